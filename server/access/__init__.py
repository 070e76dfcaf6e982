"""Who may call what: callers identified by bearer tokens, their scopes, and the audit trail."""

// Sends one person's calls through the stock @segment/analytics-node, unchanged, to the
// collector at argv[2] (as its host), message ids prefixed argv[3]; exits non-zero on an error.
const { Analytics } = require('@segment/analytics-node')

const [host, uid, writeKey] = process.argv.slice(2)
const analytics = new Analytics({ writeKey: writeKey || 'any-key', host, maxRetries: 2, flushAt: 4 })
const failures = []
analytics.on('error', (err) => failures.push(String(err && (err.reason || err.message || err))))

const anon = `${uid}-anon`
const user = `${uid}-user`
analytics.page({ anonymousId: anon, name: 'Home', properties: { path: '/' }, messageId: `${uid}-page` })
analytics.screen({ anonymousId: anon, name: 'Cart', messageId: `${uid}-screen` })
analytics.track({ anonymousId: anon, event: 'Product Viewed', properties: { sku: 'S-1', price: 9.5 }, messageId: `${uid}-track` })
analytics.identify({ userId: user, anonymousId: anon, traits: { email: `${uid}@example.org`, firstName: 'Ann' }, messageId: `${uid}-identify` })
analytics.group({ userId: user, groupId: `${uid}-acme`, traits: { name: 'Acme' }, messageId: `${uid}-group` })
analytics.alias({ previousId: `${uid}-old-anon`, userId: user, messageId: `${uid}-alias` })
analytics.track({ anonymousId: anon, event: 'Product Viewed', properties: { sku: 'S-1', price: 9.5 }, messageId: `${uid}-track` })

analytics.closeAndFlush({ timeout: 30000 }).then(() => {
  if (failures.length) {
    console.error(failures.join('\n'))
    process.exit(1)
  }
  console.log('sent')
})

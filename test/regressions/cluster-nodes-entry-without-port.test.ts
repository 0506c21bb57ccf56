/*
 * Regression (found on review): `backplaneFromEnv` cut each `REDIS_CLUSTER_NODES` entry at its last ':'
 * without checking there was one, so `10.0.0.1` became host `10.0.0.` (refused later with a message that
 * did not name the entry) and `7000` became host `700`, port 7000 (accepted). An entry without its port is
 * now refused with FST_ERR_SSE_HUB_INVALID_OPTION naming it; no default port is guessed.
 */
import t from 'tap'
import { backplaneFromEnv, type Backplane } from '../../src/index.js'

t.test('REDIS_CLUSTER_NODES entries must be host:port', async (t) => {
  const bad: Array<[string, string]> = [['10.0.0.1', '10.0.0.1'], ['7000', '7000'], ['10.0.0.1:7000, redis-b', ' redis-b'], [':7000', ':7000'], ['10.0.0.1:', '10.0.0.1:'], ['10.0.0.1:70x', '10.0.0.1:70x']]
  for (const [nodes, entry] of bad) {
    t.throws(() => backplaneFromEnv({ REDIS_CLUSTER_NODES: nodes }), { code: 'FST_ERR_SSE_HUB_INVALID_OPTION', message: `REDIS_CLUSTER_NODES: '${entry}' is not host:port` }, nodes)
  }
  t.equal((backplaneFromEnv({ REDIS_CLUSTER_NODES: '10.0.0.1:7000, redis-b:7001' }) as Backplane).type, 'redis', 'host:port entries, spaces around them ignored')
})

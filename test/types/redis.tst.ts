import { Cluster, Redis, type RedisOptions } from 'ioredis'
import { describe, expect, test } from 'tstyche'
import { backplaneFromEnv, redisBackplane, type Backplane, type RedisBackplaneOptions, type RedisClusterNode } from '../../src/index.js'

describe('redisBackplane', () => {
  test('takes a url, a cluster\'s nodes, or a client (a Redis or a Cluster)', () => {
    expect(redisBackplane({ url: 'redis://127.0.0.1:6379' })).type.toBe<Backplane>()
    expect(redisBackplane({ cluster: [{ host: '10.0.0.1', port: 6379 }] })).type.toBe<Backplane>()
    expect(redisBackplane({ client: new Redis({ lazyConnect: true }) })).type.toBe<Backplane>()
    expect(redisBackplane({ client: new Cluster([], { lazyConnect: true }) })).type.toBe<Backplane>()
    expect<RedisBackplaneOptions['cluster']>().type.toBe<readonly RedisClusterNode[] | undefined>()
  })

  test('takes ioredis options, though its types name none of ioredis\'s', () => {
    const redisOptions: RedisOptions = { password: 'secret', db: 1, tls: {} }
    expect(redisBackplane({ url: 'redis://127.0.0.1:6379', redisOptions })).type.toBe<Backplane>()
    expect(redisBackplane).type.not.toBeCallableWith({ url: 'redis://127.0.0.1:6379', redisOptions: 'db=1' })
    expect(redisBackplane).type.not.toBeCallableWith({ client: {} })
  })

  test('a cluster node has a host and a port', () => {
    expect(redisBackplane).type.not.toBeCallableWith({ cluster: [{ host: '10.0.0.1' }] })
    expect(redisBackplane).type.not.toBeCallableWith({ cluster: ['10.0.0.1:6379'] })
  })

  test('backplaneFromEnv reads an environment', () => {
    expect(backplaneFromEnv({ REDIS_CLUSTER_NODES: '10.0.0.1:6379' })).type.toBe<Backplane | 'memory'>()
  })
})

"""Django's Redis cache with the burst counter's two calls made cheap.

django-ratelimit counts with cache.add then cache.incr. Django's Redis backend builds
a client object for every call and increments in two round trips (EXISTS, then
INCRBY); this one keeps a client per connection pool and increments in one script,
still atomically and still refusing a key that has expired.
"""

from django.core.cache.backends.redis import RedisCache as DjangoRedisCache
from django.core.cache.backends.redis import RedisCacheClient

_INCR_IF_EXISTS = """
if redis.call('EXISTS', KEYS[1]) == 1 then
    return redis.call('INCRBY', KEYS[1], ARGV[1])
end
return false
"""


class _Client(RedisCacheClient):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._clients = {}
        self._incr_if_exists = None

    def get_client(self, key=None, *, write=False):
        pool = self._get_connection_pool(write)
        client = self._clients.get(id(pool))
        if client is None:
            # redis.Redis is thread-safe, and its pool reconnects after a fork.
            client = self._clients[id(pool)] = self._client(connection_pool=pool)
        return client

    def incr(self, key, delta):
        client = self.get_client(key, write=True)
        if self._incr_if_exists is None:
            self._incr_if_exists = client.register_script(_INCR_IF_EXISTS)
        value = self._incr_if_exists(keys=[key], args=[delta], client=client)
        if value is None:
            raise ValueError(f"Key '{key}' not found.")
        return value


class RedisCache(DjangoRedisCache):
    def __init__(self, server, params):
        super().__init__(server, params)
        self._class = _Client

"""Cache: one interface over an in-memory LRU or Redis, JSON only, one computation per miss."""

from .cache import Cache, CacheMetrics, cache_key_part
from .lifecycle import open_cache

__all__ = ["Cache", "CacheMetrics", "cache_key_part", "open_cache"]

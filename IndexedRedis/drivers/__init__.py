"""Drivers run flows (``IndexedRedis.flows``) against a client: they only do I/O.

``sync`` drives redis-py clients, ``aio`` redis.asyncio ones.
"""

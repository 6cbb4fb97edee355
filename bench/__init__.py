"""The IndexedRedis benchmark suite (see README, "Benchmarks")."""

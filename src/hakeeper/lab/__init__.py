"""Real engine clusters on loopback (etcd members, embedded Raft members) for tests,
benchmarks and the demo. Everything here starts its own processes and signals only those."""

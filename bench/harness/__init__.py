"""Seshat benchmark harness: starts Seshat, Redis and etcd on this machine one at a
time, drives them with the same concurrency and value size, and reports ratios."""

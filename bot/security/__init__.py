"""Security primitives shared by the edges: atomic rate counters, server-side sessions, user-name
normalization, and their tables. Each module has one job; none imports a capability or a channel."""

"""The roof: entry points that wire everything below together (CLI, service bootstrap, demo, key tools).

Nothing outside this package imports it, except tests and benches that start the service."""

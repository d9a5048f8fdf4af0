"""CLI commands, one module per area. Each module has ``register(sub)`` adding its subparsers; a
subparser's ``func(ctx) -> int`` runs the command."""

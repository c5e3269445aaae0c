"""The offline sandbox: a local Bot API emulator with a web chat page, and the runner that starts
the real bot against it."""

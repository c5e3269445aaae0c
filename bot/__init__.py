"""digitbot bot: everything Telegram (settings, application, handlers, replies, emulator, CLI)."""

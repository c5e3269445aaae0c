"""The Telegram update callbacks, one module per kind of message they answer."""

"""Bench tools (`digitbot bench --load`, `digitbot bench --retrain`): drive the bot through the
emulator; the app never imports them."""

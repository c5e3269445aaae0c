"""The local Telegram Bot API emulator used by the offline sandbox and the bot's tests."""

from bot.sandbox.emulator.errors import ApiError
from bot.sandbox.emulator.server import BotApiEmulator

__all__ = ["ApiError", "BotApiEmulator"]

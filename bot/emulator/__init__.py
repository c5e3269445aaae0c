"""The local Telegram Bot API emulator used by the offline sandbox and the bot's tests."""

from bot.emulator.errors import ApiError
from bot.emulator.server import BotApiEmulator

__all__ = ["ApiError", "BotApiEmulator"]

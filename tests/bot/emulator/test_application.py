"""A whole PTB Application polling, downloading and replying through the emulator."""

from __future__ import annotations

from telegram import Update
from telegram.ext import Application, ContextTypes, MessageHandler, filters

from bot.sandbox.emulator import BotApiEmulator
from tests.bot.emulator.conftest import ANN, TOKEN, png_bytes


async def test_ptb_application_polls_downloads_and_replies(emulator: BotApiEmulator) -> None:
    async def on_text(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """Echo the text as a quoted reply."""
        message = update.effective_message
        await message.reply_text(f"echo {message.text}", do_quote=True)

    async def on_photo(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """Download the largest size and reply with its byte count."""
        file = await update.effective_message.photo[-1].get_file()
        data = await file.download_as_bytearray()
        await update.effective_message.reply_text(f"{len(data)} bytes", do_quote=True)

    application = (
        Application.builder()
        .token(TOKEN)
        .base_url(f"{emulator.url}/bot")
        .base_file_url(f"{emulator.url}/file/bot")
        .build()
    )
    application.add_handler(MessageHandler(filters.TEXT, on_text))
    application.add_handler(MessageHandler(filters.PHOTO, on_photo))
    async with application:
        await application.start()
        await application.updater.start_polling(timeout=1)
        try:
            question = emulator.send_text(ANN, ANN, "hello")
            reply = await emulator.wait_for_reply(ANN, question["message_id"], timeout=3)
            assert reply["text"] == "echo hello"
            photo = emulator.send_photo(ANN, ANN, png_bytes(500, 300))
            reply = await emulator.wait_for_reply(ANN, photo["message_id"], timeout=3)
            assert reply["text"] == f"{photo['photo'][-1]['file_size']} bytes"
        finally:
            await application.updater.stop()
            await application.stop()
    assert [name for name, _ in emulator.calls[:2]] == ["getMe", "deleteWebhook"]
    assert ("getFile", {"file_id": photo["photo"][-1]["file_id"]}) in emulator.calls
    assert [name for name, _ in emulator.calls].count("download") == 1

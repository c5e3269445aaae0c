"""Files in the emulator: photo sizes, getFile and downloads, uploads, file_ids, documents."""

from __future__ import annotations

import aiohttp
import pytest
import telegram
from telegram import InputMediaPhoto
from telegram.error import BadRequest

from bot.sandbox.emulator import BotApiEmulator
from tests.bot.emulator.conftest import ANN, TOKEN, call, png_bytes


async def test_user_photo_is_reencoded_into_photo_sizes(emulator: BotApiEmulator) -> None:
    message = emulator.send_photo(ANN, ANN, png_bytes(2000, 1000), caption="seven")
    sizes = [(size["width"], size["height"]) for size in message["photo"]]
    assert sizes == [(90, 45), (320, 160), (800, 400), (1280, 640)]
    for size in message["photo"]:
        data = emulator.file_bytes(size["file_id"])
        assert size["file_size"] == len(data)
        assert data[:3] == b"\xff\xd8\xff"  # JPEG, whatever was sent
    assert message["caption"] == "seven"
    small = emulator.send_photo(ANN, ANN, png_bytes(50, 40))
    assert [(size["width"], size["height"]) for size in small["photo"]] == [(50, 40)]
    with pytest.raises(ValueError, match="IMAGE_PROCESS_FAILED"):
        emulator.send_photo(ANN, ANN, b"not an image")


async def test_get_file_and_download_give_the_same_bytes(
    emulator: BotApiEmulator, bot: telegram.Bot, http: aiohttp.ClientSession
) -> None:
    sent = emulator.send_photo(ANN, ANN, png_bytes(600, 400))
    update = (await bot.get_updates(timeout=0))[0]
    largest = update.message.photo[-1]
    file = await bot.get_file(largest.file_id)
    assert file.file_size == largest.file_size
    downloaded = bytes(await file.download_as_bytearray())
    assert downloaded == emulator.file_bytes(sent["photo"][-1]["file_id"])
    assert file.file_path.startswith(f"{emulator.url}/file/bot{TOKEN}/")
    assert emulator.calls[-1][0] == "download"
    async with http.get(f"{emulator.url}/file/bot{TOKEN}/photos/nothing.jpg") as response:
        assert response.status == 404


async def test_bad_file_id_is_400(
    emulator: BotApiEmulator, bot: telegram.Bot, http: aiohttp.ClientSession
) -> None:
    status, body = await call(http, emulator, "getFile", file_id="AgAC-nonsense")
    assert status == 400
    assert body == {"ok": False, "error_code": 400, "description": "Bad Request: invalid file_id"}
    with pytest.raises(BadRequest, match="Invalid file_id"):
        await bot.get_file("AgAC-nonsense")
    with pytest.raises(BadRequest, match="Wrong file identifier"):
        await bot.send_photo(ANN, "AgAC-nonsense")


async def test_bot_photo_upload_is_stored_and_reusable_by_file_id(
    emulator: BotApiEmulator, bot: telegram.Bot
) -> None:
    sent = await bot.send_photo(
        ANN, png_bytes(1000, 500), caption="<b>curves</b>", parse_mode="HTML"
    )
    assert [(size.width, size.height) for size in sent.photo][-1] == (1000, 500)
    stored = emulator.messages(ANN)[-1]
    assert stored["from"]["id"] == 123456
    assert stored["caption"] == "curves"
    assert stored["caption_entities"] == [{"type": "bold", "offset": 0, "length": 6}]
    assert len(stored["photo"]) == 4
    again = await bot.send_photo(ANN, sent.photo[-1].file_id)
    assert [size.file_id for size in again.photo] == [size.file_id for size in sent.photo]
    file = await bot.get_file(sent.photo[0].file_id)
    assert len(await file.download_as_bytearray()) == sent.photo[0].file_size


async def test_send_media_group_with_attached_uploads(
    emulator: BotApiEmulator, bot: telegram.Bot
) -> None:
    first = await bot.send_photo(ANN, png_bytes(100, 100))
    group = await bot.send_media_group(
        ANN,
        [
            InputMediaPhoto(png_bytes(200, 100), caption="upload"),
            InputMediaPhoto(first.photo[-1].file_id, caption="by id"),
        ],
    )
    assert len(group) == 2
    assert group[0].media_group_id == group[1].media_group_id is not None
    assert [message.caption for message in group] == ["upload", "by id"]
    assert (group[0].photo[-1].width, group[0].photo[-1].height) == (200, 100)


async def test_user_document_keeps_its_bytes(emulator: BotApiEmulator, bot: telegram.Bot) -> None:
    data = png_bytes(30, 30)
    sent = emulator.send_document(ANN, ANN, data, file_name="digit.png")
    document = sent["document"]
    assert (document["file_name"], document["mime_type"]) == ("digit.png", "image/png")
    assert document["file_size"] == len(data)
    assert "thumbnail" in document
    file = await bot.get_file(document["file_id"])
    assert bytes(await file.download_as_bytearray()) == data

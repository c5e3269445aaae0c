"""The sandbox page in headless Chromium: upload, drop and draw digits; /stats as the admin.

Uses Debian's chromium (/usr/bin/chromium; CI installs it with apt) driven by Python playwright:
never a browser download. The sandbox runs in this test's event loop on a free port, so the page
talks to the real bot through the emulator exactly as a person's browser would.
"""

from __future__ import annotations

import base64
import os
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Browser, Page, async_playwright

from bot.sandbox.runner import ADMIN_USER_ID, PEOPLE, Sandbox
from tests.conftest import digit_photo

pytestmark = pytest.mark.browser

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
TIMEOUT_MS = 20_000  # a busy 2-core machine


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    if not CHROMIUM.is_file():
        pytest.fail(
            f"{CHROMIUM} is missing: install Debian's chromium with "
            "`apt-get install -y chromium` (never `playwright install`)"
        )
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS
        )
        try:
            yield launched
        finally:
            await launched.close()


@pytest.fixture
async def page(browser: Browser, sandbox: Sandbox) -> AsyncIterator[Page]:
    context = await browser.new_context(viewport={"width": 1100, "height": 800})
    # The page must work under its strict Content-Security-Policy: every violation is recorded.
    await context.add_init_script(
        "window.cspViolations = [];"
        "document.addEventListener('securitypolicyviolation', event =>"
        " window.cspViolations.push(event.violatedDirective + ' ' + event.blockedURI));"
    )
    opened = await context.new_page()
    opened.set_default_timeout(TIMEOUT_MS)
    errors: list[str] = []
    opened.on("pageerror", lambda error: errors.append(str(error)))
    response = await opened.goto(sandbox.url)
    assert response is not None and "script-src 'self'" in (
        await response.header_value("content-security-policy") or ""
    )
    await opened.locator(".chat-row.active").wait_for()
    yield opened
    violations = await opened.evaluate("window.cspViolations")
    await context.close()
    assert not errors, f"JavaScript errors on the page: {errors}"
    assert not violations, f"Content-Security-Policy violations: {violations}"


async def answered(page: Page, send: Callable[[], Awaitable[Any]]) -> tuple[str, str]:
    """Do `send`; return the id of my new message and the first line of the bot's reply to it."""
    outgoing = page.locator("#messages .msg.out")
    before = await outgoing.count()
    await send()
    await page.wait_for_function(
        "count => document.querySelectorAll('#messages .msg.out').length > count", arg=before
    )
    message_id = await outgoing.last.get_attribute("data-id")
    assert message_id is not None, "a sent message has a data-id"
    answer = page.locator(f'#messages .msg.bot[data-reply-to="{message_id}"] .text').first
    await answer.wait_for()
    return message_id, (await answer.inner_text()).splitlines()[0]


async def send_text(page: Page, text: str) -> None:
    await page.locator("#text").fill(text)
    await page.locator("#text").press("Enter")


async def test_upload_drop_and_draw_digits(
    page: Page,
    sandbox: Sandbox,
    mnist: Any,
    tmp_path: Path,
) -> None:
    # A real MNIST test digit, dark on a light page, through the file picker.
    index = 0
    label = int(mnist.y_test[index])
    photo = tmp_path / "digit.png"
    photo.write_bytes(digit_photo(mnist.x_test[index]))
    await page.locator("#file-input").set_input_files(str(photo))
    await page.locator("#attachment-bar").wait_for()
    message_id, first_line = await answered(page, page.locator("#send-button").click)
    assert first_line.split()[0] == str(label), first_line
    stored = next(
        m for m in sandbox.emulator.messages(ADMIN_USER_ID) if m["message_id"] == int(message_id)
    )
    assert "photo" in stored  # sent as a photo, not a file
    # The page shows the photo and the quoted reply with its thumbnail.
    assert await page.locator(f'.msg.out[data-id="{message_id}"] img.photo').count() == 1
    quote = page.locator(f'.msg.bot[data-reply-to="{message_id}"] .quote')
    assert await quote.locator(".quote-name").inner_text() == PEOPLE[0][1]
    assert await quote.locator("img.quote-thumb").count() == 1

    # Another test digit dropped onto the chat and sent as a file (a document, uncompressed).
    index = 1
    encoded = base64.b64encode(digit_photo(mnist.x_test[index])).decode("ascii")
    transfer = await page.evaluate_handle(
        """encoded => {
            const bytes = Uint8Array.from(atob(encoded), c => c.charCodeAt(0));
            const transfer = new DataTransfer();
            transfer.items.add(new File([bytes], "dropped.png", {type: "image/png"}));
            return transfer;
        }""",
        encoded,
    )
    await page.dispatch_event("#chat", "drop", {"dataTransfer": transfer})
    await page.locator("#attachment-bar").wait_for()
    assert "dropped.png" in await page.locator("#attachment-name").inner_text()
    await page.locator("#as-document").check()
    message_id, first_line = await answered(page, page.locator("#send-button").click)
    assert first_line.split()[0] == str(int(mnist.y_test[index])), first_line
    stored = next(
        m for m in sandbox.emulator.messages(ADMIN_USER_ID) if m["message_id"] == int(message_id)
    )
    assert stored["document"]["file_name"] == "dropped.png"

    # A "1" drawn with the mouse: one vertical stroke down the middle of the canvas.
    await page.locator("#draw-button").click()
    canvas = page.locator("#canvas")
    await canvas.wait_for()
    box = await canvas.bounding_box()
    assert box is not None
    middle = box["x"] + box["width"] * 0.5
    await page.mouse.move(middle, box["y"] + box["height"] * 0.15)
    await page.mouse.down()
    await page.mouse.move(middle + 3, box["y"] + box["height"] * 0.85, steps=12)
    await page.mouse.up()
    _, first_line = await answered(page, page.locator("#draw-send").click)
    assert re.match(r"^\d", first_line), first_line  # an answer with a digit arrived
    assert first_line.split()[0] == "1", first_line


async def test_admin_stats_and_a_refused_non_admin(page: Page, sandbox: Sandbox) -> None:
    message_id, first_line = await answered(page, lambda: send_text(page, "/stats"))
    assert first_line.startswith("Model ")
    accuracy = sandbox.application.bot_data["digitbot"].classifier.metadata["test_accuracy"]
    stats = page.locator(f'.msg.bot[data-reply-to="{message_id}"] .text').first
    assert f"accuracy {accuracy * 100:.2f}%" in await stats.inner_text()
    # The confusion matrix and the curves, as one album of two loaded images.
    photos = page.locator(f'.msg.bot[data-reply-to="{message_id}"] img.photo')
    await photos.nth(1).wait_for()
    assert await photos.count() == 2
    await page.wait_for_function(
        "ids => [...document.querySelectorAll(ids)].every(img => img.complete && img.naturalWidth)",
        arg=f'.msg.bot[data-reply-to="{message_id}"] img.photo',
    )

    # Switch to Bob (not an admin): the page follows to his private chat; /stats is refused.
    bob = PEOPLE[1]
    await page.locator("#person").select_option(str(bob[0]))
    await page.wait_for_function(
        "name => document.getElementById('chat-status').textContent.includes(name)", arg=bob[1]
    )
    assert not await page.locator("#admin-toggle").is_checked()
    _, first_line = await answered(page, lambda: send_text(page, "/stats"))
    assert first_line == "Sorry, this command is for the bot's admins only."


async def test_bot_html_is_rendered_from_entities_and_nothing_else_runs(
    page: Page,
    sandbox: Sandbox,
) -> None:
    # What the bot may send in HTML parse mode: allowed tags become formatting, escaped markup
    # stays text, and a link to a script URL is not made clickable.
    await sandbox.application.bot.send_message(
        ADMIN_USER_ID,
        "<b>bold</b> <i>it</i> <code>x</code> &lt;img src=x onerror=window.pwned=1&gt; "
        '<a href="javascript:window.pwned=1">link</a> <a href="https://example.org/">web</a>',
        parse_mode="HTML",
    )
    text = page.locator("#messages .msg.bot .text").last
    await text.wait_for()
    assert await text.locator("strong").inner_text() == "bold"
    assert await text.locator("em").inner_text() == "it"
    assert await text.locator("code").inner_text() == "x"
    assert "<img src=x onerror=window.pwned=1>" in await text.inner_text()
    assert await text.locator("img").count() == 0
    assert await text.locator("a").count() == 1
    assert await text.locator("a").get_attribute("href") == "https://example.org/"
    assert await page.evaluate("window.pwned") is None


# --- a newcomer's first minutes on the page (issue 16) --------------------------------------------

SCREENSHOTS = Path(os.environ.get("SANDBOX_SCREENSHOTS", "/tmp/digitbot-sandbox-screenshots"))


async def shot(page: Page, name: str) -> None:
    """A screenshot to look at by eye (the folder is printed by pytest -s via the path)."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(SCREENSHOTS / f"{name}.png"))


async def test_a_correction_button_on_an_older_answer_keeps_the_chat_where_it_is(
    page: Page, sandbox: Sandbox, mnist: Any
) -> None:
    emulator = sandbox.emulator
    photo = emulator.send_photo(ADMIN_USER_ID, ADMIN_USER_ID, digit_photo(mnist.x_test[0]))
    answer = await emulator.wait_for_reply(ADMIN_USER_ID, photo["message_id"])
    for index in range(14):  # enough newer messages that the answer is far from the bottom
        text = emulator.send_text(ADMIN_USER_ID, ADMIN_USER_ID, f"message {index}")
        await emulator.wait_for_reply(ADMIN_USER_ID, text["message_id"])
    last = page.locator("#messages .msg.bot").last
    await page.wait_for_function(
        "() => document.querySelectorAll('#messages .msg.bot').length >= 15"
    )
    await last.wait_for()
    node = page.locator(f'#messages .msg.bot[data-id="{answer["message_id"]}"]')
    await node.scroll_into_view_if_needed()
    await node.evaluate("n => n.scrollIntoView({block: 'center'})")
    before = await page.evaluate("document.getElementById('messages').scrollTop")
    bottom = await page.evaluate(
        "(() => { const m = document.getElementById('messages');"
        " return m.scrollHeight - m.clientHeight; })()"
    )
    assert 0 < before < bottom - 200, (before, bottom)  # an older answer, mid-chat
    await node.locator(".keyboard-button", has_text="wrong").click()
    await node.locator(".keyboard-button", has_text="back").wait_for()  # the 0-9 keypad came
    await page.wait_for_timeout(300)
    after = await page.evaluate("document.getElementById('messages').scrollTop")
    await shot(page, "older-answer-after-wrong")
    assert abs(after - before) < 80, (before, after)  # not back at the top, not at the bottom
    assert await node.is_visible()


async def test_each_tab_is_its_own_person_and_others_chats_are_read_only(
    browser: Browser, page: Page, sandbox: Sandbox
) -> None:
    alice, bob = PEOPLE[0], PEOPLE[1]
    other = await page.context.new_page()  # a second tab of the same browser
    other.set_default_timeout(TIMEOUT_MS)
    await other.goto(sandbox.url)
    await other.locator(".chat-row.active").wait_for()
    await other.locator("#person").select_option(str(bob[0]))
    await other.wait_for_function(
        "name => document.getElementById('chat-status').textContent.includes(name)", arg=bob[1]
    )
    await page.wait_for_timeout(500)
    assert await page.locator("#person").input_value() == str(alice[0])  # the first tab: Alice
    # A reload keeps each tab's person.
    await other.reload()
    await other.locator(".chat-row.active").wait_for()
    assert await other.locator("#person").input_value() == str(bob[0])

    # Opening Bob's chat as Alice shows it read-only with an explicit switch; nothing changes.
    await page.locator(f'.chat-row[data-chat-id="{bob[0]}"]').click()
    await page.locator("#owner-bar").wait_for()
    assert await page.locator("#person").input_value() == str(alice[0])
    assert await page.locator("#text").is_disabled()
    assert "only Bob can write here" in await page.locator("#owner-bar").inner_text()
    await shot(page, "someone-elses-chat")
    await page.locator("#owner-switch").click()
    await page.locator("#owner-bar").wait_for(state="hidden")
    assert await page.locator("#person").input_value() == str(bob[0])
    assert await page.locator("#text").is_enabled()
    await other.close()


async def test_a_file_that_is_not_an_image_sent_as_a_photo_gets_a_clear_message(
    page: Page, tmp_path: Path
) -> None:
    fake = tmp_path / "scan.png"  # an image's name, a text's content
    fake.write_text("not really a picture")
    await page.locator("#file-input").set_input_files(str(fake))
    await page.locator("#attachment-bar").wait_for()
    assert not await page.locator("#as-document").is_checked()  # it looks like an image
    await page.locator("#send-button").click()
    toast = page.locator("#toast")
    await toast.wait_for()
    text = await toast.inner_text()
    await shot(page, "not-an-image-as-photo")
    assert text.startswith("scan.png is not an image, so it cannot be sent as a photo"), text
    assert "IMAGE_PROCESS_FAILED" not in text and "Bad Request" not in text

// The sandbox page: a Telegram-like chat client for the local Bot API emulator.
// It reads the state from /sandbox/api/state, follows changes over Server-Sent Events
// (/sandbox/api/events) and acts as the chosen person through the /sandbox/api/ endpoints.
// Message text is rendered from Telegram entities with DOM nodes only (never innerHTML), so
// nothing the bot or a person sends can inject markup.
"use strict";

const API = "/sandbox/api";
const MAX_MESSAGES_PER_CHAT = 1000; // the emulator keeps at most this many per chat as well
const TYPING_MS = 5500;
const TAB_USER_KEY = "digitbot-sandbox-user"; // sessionStorage: who this tab is
const MAX_PHOTO_WIDTH = 480; // CSS pixels, as Telegram's desktop clients roughly do
const MAX_PHOTO_HEIGHT = 420; // Telegram shows a chat action for about five seconds
const AVATAR_COLORS = ["#e17076", "#faa774", "#a695e7", "#7bc862", "#6ec9cb", "#65aadd", "#ee7aae"];

const state = {
  bot: null,
  users: new Map(), // id -> user (with is_admin)
  chats: new Map(), // id -> chat (with group settings and commands)
  messages: new Map(), // chat id -> Map(message id -> message)
  currentUserId: null,
  chatId: null,
  replyTo: null, // message id the next message replies to
  attachment: null, // {blob, name}
  unread: new Map(), // chat id -> count
  typing: new Map(), // chat id -> timestamp until which "typing…" shows
};

const $ = (id) => document.getElementById(id);

// --- small helpers -------------------------------------------------------------------------------

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined && text !== null) node.textContent = text;
  return node;
}

function icon(name) {
  const svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
  const use = document.createElementNS("http://www.w3.org/2000/svg", "use");
  use.setAttribute("href", `#icon-${name}`);
  svg.appendChild(use);
  return svg;
}

function fileUrl(fileId) {
  return `/sandbox/file/${encodeURIComponent(fileId)}`;
}

function timeText(unixSeconds) {
  const date = new Date(unixSeconds * 1000);
  return date.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
}

function sizeText(bytes) {
  if (bytes >= 1e6) return `${(bytes / 1e6).toFixed(1)} MB`;
  if (bytes >= 1e3) return `${Math.round(bytes / 1e3)} KB`;
  return `${bytes} B`;
}

function fullName(user) {
  if (!user) return "";
  return [user.first_name, user.last_name].filter(Boolean).join(" ");
}

function avatar(node, id, label) {
  node.textContent = (label || "?").trim().charAt(0).toUpperCase();
  node.style.background = AVATAR_COLORS[Math.abs(Number(id)) % AVATAR_COLORS.length];
}

function isBot(message) {
  return state.bot && message.from && message.from.id === state.bot.id;
}

let toastTimer = null;
function toast(text, isAlert) {
  const node = $("toast");
  node.textContent = text;
  node.className = isAlert ? "alert" : "";
  node.hidden = false;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => { node.hidden = true; }, isAlert ? 6000 : 3500);
}

// --- talking to the server -----------------------------------------------------------------------

async function post(path, body) {
  const options = { method: "POST", headers: { "X-Sandbox": "1" } };
  if (body instanceof FormData) {
    options.body = body;
  } else {
    options.headers["Content-Type"] = "application/json";
    options.body = JSON.stringify(body);
  }
  let reply;
  try {
    const response = await fetch(`${API}/${path}`, options);
    reply = await response.json();
  } catch (error) {
    toast(`The sandbox server does not answer (${error.message}). Is it still running?`, true);
    throw error;
  }
  if (!reply.ok) {
    toast(reply.error || "Request failed", true);
    throw new Error(reply.error);
  }
  return reply;
}

async function loadState() {
  const response = await fetch(`${API}/state`);
  const data = await response.json();
  state.bot = data.bot;
  state.users = new Map(data.users.map((user) => [user.id, user]));
  state.chats = new Map(data.chats.map((chat) => [chat.id, chat]));
  state.messages = new Map();
  for (const [chatId, messages] of Object.entries(data.messages)) {
    state.messages.set(Number(chatId), new Map(messages.map((m) => [m.message_id, m])));
  }
  // Who I am belongs to this tab (sessionStorage): another tab may be someone else.
  const mine = Number(sessionStorage.getItem(TAB_USER_KEY));
  state.currentUserId = state.users.has(mine) ? mine : data.current_user_id;
  if (state.chatId === null || !state.chats.has(state.chatId)) {
    state.chatId = state.chats.has(state.currentUserId) ? state.currentUserId : data.chats[0]?.id ?? null;
  }
  renderAll();
}

function connectEvents() {
  const events = new EventSource(`${API}/events`);
  // On every (re)connection, reload everything: events missed while disconnected are in it.
  events.onopen = () => {
    $("connection").hidden = true;
    loadState().catch(() => {});
  };
  events.onmessage = (event) => handleEvent(JSON.parse(event.data));
  events.onerror = () => {
    $("connection").hidden = false;
    // The browser retries by itself unless the server answered with an error status.
    if (events.readyState === EventSource.CLOSED) setTimeout(connectEvents, 3000);
  };
}

function handleEvent(event) {
  switch (event.type) {
    case "new_message":
    case "edited_message":
      storeMessage(event.chat_id, event.message, event.type === "new_message");
      break;
    case "deleted_message":
      state.messages.get(event.chat_id)?.delete(event.message_id);
      refreshChat(event.chat_id);
      break;
    case "chat_action":
      state.typing.set(event.chat_id, Date.now() + TYPING_MS);
      renderHeader();
      renderChatList();
      setTimeout(() => { renderHeader(); renderChatList(); }, TYPING_MS + 100);
      break;
    case "callback_answer":
      if (event.answer && event.answer.text) toast(event.answer.text, event.answer.show_alert);
      break;
    case "current_user": // another tab chose who it is: that does not change who this tab is
      break;
    case "new_chat":
    case "admins":
    case "group":
      loadState().catch(() => {});
      break;
    default:
      break;
  }
}

function storeMessage(chatId, message, isNew) {
  if (!state.messages.has(chatId)) state.messages.set(chatId, new Map());
  const messages = state.messages.get(chatId);
  messages.set(message.message_id, message);
  while (messages.size > MAX_MESSAGES_PER_CHAT) messages.delete(messages.keys().next().value);
  if (isBot(message)) state.typing.delete(chatId); // a reply ends "typing…"
  if (isNew && chatId !== state.chatId) state.unread.set(chatId, (state.unread.get(chatId) || 0) + 1);
  refreshChat(chatId, isNew && message.from && message.from.id === state.currentUserId);
}

function refreshChat(chatId, scrollDown) {
  renderChatList();
  if (chatId === state.chatId) {
    renderHeader();
    renderMessages(scrollDown);
  }
}

// --- rendering: text with entities ---------------------------------------------------------------

const SAFE_LINK = /^(https?:|tg:|mailto:)/i;

function entityNode(entity, covered) {
  switch (entity.type) {
    case "bold": return el("strong");
    case "italic": return el("em");
    case "underline": return el("u");
    case "strikethrough": return el("s");
    case "spoiler": {
      const node = el("span", "spoiler");
      node.addEventListener("click", () => node.classList.add("revealed"));
      return node;
    }
    case "code": return el("code");
    case "pre": return el("pre");
    case "blockquote":
    case "expandable_blockquote": return el("blockquote");
    case "text_link": return linkNode(entity.url);
    case "url": return linkNode(/^[a-z]+:/i.test(covered) ? covered : `https://${covered}`);
    case "email": return linkNode(`mailto:${covered}`);
    case "bot_command": {
      const node = el("a", "command");
      node.href = "#";
      node.addEventListener("click", (event) => {
        event.preventDefault();
        sendText(covered);
      });
      return node;
    }
    case "mention":
    case "text_mention":
    case "hashtag":
    case "cashtag": return el("span", "mention");
    default: return el("span");
  }
}

function linkNode(url) {
  if (!url || !SAFE_LINK.test(url)) return el("span", "mention");
  const node = el("a");
  node.href = url;
  node.target = "_blank";
  node.rel = "noopener noreferrer";
  return node;
}

// Offsets are UTF-16 code units in Telegram and in JavaScript strings alike.
function appendEntities(parent, text, entities, start, end) {
  let position = start;
  let index = 0;
  while (index < entities.length) {
    const entity = entities[index];
    const entityEnd = entity.offset + entity.length;
    if (entity.offset < position || entityEnd > end) { index += 1; continue; } // overlapping
    parent.appendChild(document.createTextNode(text.slice(position, entity.offset)));
    const inner = [];
    let next = index + 1;
    while (next < entities.length && entities[next].offset < entityEnd) {
      if (entities[next].offset + entities[next].length <= entityEnd) inner.push(entities[next]);
      next += 1;
    }
    const node = entityNode(entity, text.slice(entity.offset, entityEnd));
    appendEntities(node, text, inner, entity.offset, entityEnd);
    parent.appendChild(node);
    position = entityEnd;
    index = next;
  }
  parent.appendChild(document.createTextNode(text.slice(position, end)));
}

function formattedText(text, entities, className) {
  const node = el("div", className);
  const sorted = [...(entities || [])].sort((a, b) => a.offset - b.offset || b.length - a.length);
  appendEntities(node, text, sorted, 0, text.length);
  return node;
}

// --- rendering: messages -------------------------------------------------------------------------

function photoFor(sizes, minSide) {
  const sorted = [...sizes].sort((a, b) => a.width * a.height - b.width * b.height);
  return sorted.find((size) => Math.max(size.width, size.height) >= minSide) || sorted[sorted.length - 1];
}

function snippet(message) {
  if (message.text) return message.text.split("\n")[0];
  const kind = message.photo ? "Photo" : message.document ? (message.document.file_name || "File") : "Message";
  return message.caption ? `${kind}, ${message.caption.split("\n")[0]}` : kind;
}

function senderName(message) {
  if (isBot(message)) return state.bot.first_name;
  return fullName(state.users.get(message.from.id) || message.from);
}

function quoteNode(quoted) {
  const node = el("div", "quote");
  node.style.setProperty("--quote-color", AVATAR_COLORS[Math.abs(quoted.from.id) % AVATAR_COLORS.length]);
  const thumbSizes = quoted.photo || (quoted.document && quoted.document.thumbnail ? [quoted.document.thumbnail] : null);
  if (thumbSizes) {
    const image = el("img", "quote-thumb");
    image.src = fileUrl(photoFor(thumbSizes, 0).file_id);
    image.alt = "";
    node.appendChild(image);
  }
  const body = el("div", "quote-body");
  body.appendChild(el("div", "quote-name", senderName(quoted)));
  body.appendChild(el("div", "quote-text", snippet(quoted)));
  node.appendChild(body);
  node.addEventListener("click", () => flashMessage(quoted.message_id));
  return node;
}

function photoNode(sizes) {
  const shown = photoFor(sizes, 640);
  const largest = photoFor(sizes, Infinity);
  const image = el("img", "photo");
  image.src = fileUrl(shown.file_id);
  // A fixed box before the image loads, so that scrolling to the newest message stays exact.
  const width = Math.min(shown.width, MAX_PHOTO_WIDTH, (MAX_PHOTO_HEIGHT * shown.width) / shown.height);
  image.style.width = `${Math.round(width)}px`;
  image.style.aspectRatio = `${shown.width} / ${shown.height}`;
  image.alt = "photo";
  image.loading = "lazy";
  image.addEventListener("click", () => openLightbox(fileUrl(largest.file_id)));
  return image;
}

function documentNode(document_) {
  const node = el("div", "document");
  const isImage = (document_.mime_type || "").startsWith("image/");
  if (document_.thumbnail) {
    const image = el("img", "document-thumb");
    image.src = fileUrl(document_.thumbnail.file_id);
    image.alt = "";
    node.appendChild(image);
  } else {
    const badge = el("div", "document-icon");
    badge.appendChild(icon("file"));
    node.appendChild(badge);
  }
  const body = el("div", "document-body");
  body.appendChild(el("div", "document-name", document_.file_name || "file"));
  body.appendChild(el("div", "document-size", `${sizeText(document_.file_size || 0)} · ${document_.mime_type || "file"}`));
  node.appendChild(body);
  if (isImage) node.addEventListener("click", () => openLightbox(fileUrl(document_.file_id)));
  return node;
}

function keyboardNode(chatId, message) {
  const rows = message.reply_markup && message.reply_markup.inline_keyboard;
  if (!rows || !rows.length) return null;
  const keyboard = el("div", "keyboard");
  for (const row of rows) {
    const rowNode = el("div", "keyboard-row");
    for (const button of row) {
      const buttonNode = el(button.url ? "a" : "button", "keyboard-button", button.text);
      if (button.url && SAFE_LINK.test(button.url)) {
        buttonNode.href = button.url;
        buttonNode.target = "_blank";
        buttonNode.rel = "noopener noreferrer";
      } else if (button.callback_data !== undefined) {
        buttonNode.type = "button";
        buttonNode.addEventListener("click", () => {
          post("press_button", {
            chat_id: chatId, user_id: state.currentUserId, message_id: message.message_id, callback_data: button.callback_data,
          })
            .catch(() => {});
        });
      } else {
        buttonNode.disabled = true;
      }
      rowNode.appendChild(buttonNode);
    }
    keyboard.appendChild(rowNode);
  }
  return keyboard;
}

// Consecutive messages of one media group (the bot's /stats pictures) form one album bubble.
function buildItems(messages) {
  const items = [];
  for (const message of messages) {
    const last = items[items.length - 1];
    if (last && message.media_group_id && last.messages[0].media_group_id === message.media_group_id) {
      last.messages.push(message);
    } else {
      items.push({ messages: [message] });
    }
  }
  for (const item of items) {
    item.key = String(item.messages[0].message_id);
    item.signature = JSON.stringify([state.currentUserId, item.messages]);
  }
  return items;
}

function messageItemNode(chat, item) {
  const first = item.messages[0];
  const outgoing = !isBot(first) && first.from.id === state.currentUserId;
  const wrapper = el("div", `msg ${outgoing ? "out" : "in"}${isBot(first) ? " bot" : ""}`);
  wrapper.dataset.id = first.message_id;
  wrapper.dataset.key = item.key;
  wrapper.dataset.signature = item.signature;
  if (first.reply_to_message) wrapper.dataset.replyTo = first.reply_to_message.message_id;
  if (chat.type !== "private" && !outgoing) {
    const face = el("div", "avatar small");
    avatar(face, first.from.id, senderName(first));
    wrapper.appendChild(face);
  }
  const column = el("div", "msg-column");
  const bubble = el("div", "bubble");
  if (chat.type !== "private" && !outgoing) {
    const name = el("div", "sender", senderName(first));
    name.style.color = AVATAR_COLORS[Math.abs(first.from.id) % AVATAR_COLORS.length];
    bubble.appendChild(name);
  }
  if (first.reply_to_message) bubble.appendChild(quoteNode(first.reply_to_message));
  // An album stacks its photos, each with its own caption, so charts stay readable.
  for (const message of item.messages) {
    if (message.photo) {
      const frame = el("div", "photo-frame");
      frame.appendChild(photoNode(message.photo));
      bubble.appendChild(frame);
      bubble.classList.add("has-media");
    }
    if (message.document) bubble.appendChild(documentNode(message.document));
    if (message.text) bubble.appendChild(formattedText(message.text, message.entities, "text"));
    if (message.caption) bubble.appendChild(formattedText(message.caption, message.caption_entities, "text caption"));
  }
  const captioned = item.messages.some((message) => message.text || message.caption || message.document);
  if (!captioned) bubble.classList.add("media-only"); // the time sits on the photo
  const meta = el("span", "meta");
  if (item.messages.some((message) => message.edit_date)) meta.appendChild(el("span", "edited", "edited"));
  meta.appendChild(document.createTextNode(timeText(first.date)));
  bubble.appendChild(meta);
  column.appendChild(bubble);
  for (const message of item.messages) {
    const keyboard = keyboardNode(chat.id, message);
    if (keyboard) column.appendChild(keyboard);
  }
  wrapper.appendChild(column);
  const replyButton = el("button", "reply-button");
  replyButton.type = "button";
  replyButton.title = "Reply";
  replyButton.setAttribute("aria-label", "Reply to this message");
  replyButton.appendChild(icon("reply"));
  replyButton.addEventListener("click", () => startReply(first.message_id));
  wrapper.appendChild(replyButton);
  wrapper.addEventListener("dblclick", () => startReply(first.message_id));
  return wrapper;
}

function introNode(chat) {
  const node = el("div", "service");
  const botName = state.bot ? `@${state.bot.username}` : "the bot";
  if (notMine(chat)) {
    const owner = state.users.get(chat.id);
    node.textContent = `${owner ? fullName(owner) : "Someone"}'s private chat with ${botName}, shown to you read-only.`;
  } else if (chat.type === "private") {
    node.textContent = `Your private chat with ${botName}. Send /start, a photo of a handwritten digit, ` +
      "an image file, or draw a digit with the pencil.";
  } else if (chat.privacy && !chat.bot_is_admin) {
    node.textContent = `Privacy mode is on: ${botName} only receives commands, messages that mention it ` +
      "and replies to its messages. Caption a photo with /predict, or reply /predict to a photo.";
  } else {
    node.textContent = `${botName} receives every message in this group. It answers photos captioned ` +
      `/predict or mentioning ${botName}, and /predict sent as a reply to a photo.`;
  }
  return node;
}

function renderMessages(scrollDown) {
  const container = $("messages");
  const chat = state.chats.get(state.chatId);
  if (!chat) { container.replaceChildren(); return; }
  const nearBottom = container.scrollHeight - container.scrollTop - container.clientHeight < 120;
  const old = new Map();
  for (const child of container.children) if (child.dataset.key) old.set(child.dataset.key, child);
  const nodes = [introNode(chat)];
  for (const item of buildItems([...(state.messages.get(chat.id) || new Map()).values()])) {
    const existing = old.get(item.key);
    nodes.push(existing && existing.dataset.signature === item.signature ? existing : messageItemNode(chat, item));
  }
  // Replacing the children resets the scroll position (the box is briefly empty): keep it, so that
  // an edit of an older message (a pressed correction button) leaves the view where it was.
  const top = container.scrollTop;
  container.replaceChildren(...nodes);
  container.scrollTop = scrollDown || nearBottom ? container.scrollHeight : top;
}

function flashMessage(messageId) {
  const node = document.querySelector(`#messages .msg[data-id="${Number(messageId)}"]`);
  if (!node) { toast("That message is no longer stored"); return; }
  node.scrollIntoView({ block: "center", behavior: "smooth" });
  node.classList.remove("flash");
  void node.offsetWidth; // restart the animation
  node.classList.add("flash");
}

// --- rendering: chat list, header, people --------------------------------------------------------

function chatTitle(chat) {
  if (chat.type !== "private") return chat.title;
  return `${state.bot ? state.bot.first_name : "Bot"} · ${chat.first_name}`;
}

function renderChatList() {
  const list = $("chat-list");
  const rows = [];
  const chats = [...state.chats.values()].sort((a, b) => (a.type === "private") - (b.type === "private"));
  for (const chat of chats) {
    const messages = [...(state.messages.get(chat.id) || new Map()).values()];
    const last = messages[messages.length - 1];
    const row = el("button", `chat-row${chat.id === state.chatId ? " active" : ""}`);
    row.type = "button";
    row.dataset.chatId = chat.id;
    const face = el("div", "avatar");
    avatar(face, chat.id, chat.type === "private" ? chat.first_name : chat.title);
    row.appendChild(face);
    const body = el("div", "chat-row-body");
    const top = el("div", "chat-row-top");
    top.appendChild(el("span", "chat-row-title", chatTitle(chat)));
    if (last) top.appendChild(el("span", "chat-row-time", timeText(last.date)));
    body.appendChild(top);
    const bottom = el("div", "chat-row-bottom");
    let preview = chat.type === "private" ? "private chat" : "group";
    if (isTyping(chat.id)) preview = `${state.bot.first_name} is typing…`;
    else if (last) preview = `${chat.type !== "private" || isBot(last) ? `${senderName(last)}: ` : ""}${snippet(last)}`;
    bottom.appendChild(el("span", "chat-row-preview", preview));
    const unread = state.unread.get(chat.id);
    if (unread) bottom.appendChild(el("span", "badge", String(unread)));
    body.appendChild(bottom);
    row.appendChild(body);
    row.addEventListener("click", () => openChat(chat.id));
    rows.push(row);
  }
  list.replaceChildren(...rows);
}

function isTyping(chatId) {
  return (state.typing.get(chatId) || 0) > Date.now();
}

function renderHeader() {
  const chat = state.chats.get(state.chatId);
  if (!chat) return;
  $("chat-name").textContent = chat.type === "private" ? state.bot.first_name : chat.title;
  avatar($("chat-avatar"), chat.id, chat.type === "private" ? state.bot.first_name : chat.title);
  let status;
  if (isTyping(chat.id)) status = "typing…";
  else if (chat.type === "private") status = `bot · @${state.bot.username} · private chat of ${chat.first_name}`;
  else status = `${state.users.size + 1} members · ${chat.bot_is_admin ? "bot is an admin" : chat.privacy ? "privacy mode on" : "privacy mode off"}`;
  $("chat-status").textContent = status;
  $("chat-status").classList.toggle("typing", isTyping(chat.id));
  const isGroup = chat.type !== "private";
  $("group-button").hidden = !isGroup;
  if (!isGroup) $("group-settings").hidden = true;
  $("group-privacy").checked = Boolean(chat.privacy);
  $("group-bot-admin").checked = Boolean(chat.bot_is_admin);
  $("text").placeholder = isGroup ? `Message ${chat.title}` : "Message";
}

function renderPeople() {
  const select = $("person");
  const options = [];
  for (const user of state.users.values()) {
    const option = el("option", null, `${fullName(user)}${user.is_admin ? " ★ admin" : ""}`);
    option.value = user.id;
    options.push(option);
  }
  select.replaceChildren(...options);
  select.value = state.currentUserId;
  const me = state.users.get(state.currentUserId);
  $("admin-toggle").checked = Boolean(me && me.is_admin);
}

function renderComposer() {
  const chat = state.chats.get(state.chatId);
  const readOnly = notMine(chat);
  $("owner-bar").hidden = !readOnly;
  for (const id of ["text", "send-button", "attach-button", "camera-button", "draw-button", "menu-button"]) {
    $(id).disabled = readOnly;
  }
  if (readOnly) {
    const owner = state.users.get(chat.id);
    const name = owner ? fullName(owner) : "its owner";
    const me = state.users.get(state.currentUserId);
    $("owner-title").textContent = `${name}'s private chat with the bot`;
    $("owner-text").textContent = `You are ${me ? fullName(me) : "someone else"}: only ${name} can write here.`;
    $("owner-switch").textContent = `Be ${name}`;
    $("draw-panel").hidden = true;
  }
  const replied = state.replyTo !== null ? state.messages.get(state.chatId)?.get(state.replyTo) : null;
  if (state.replyTo !== null && !replied) state.replyTo = null;
  $("reply-bar").hidden = !replied;
  if (replied) {
    $("reply-name").textContent = `Reply to ${senderName(replied)}`;
    $("reply-text").textContent = snippet(replied);
  }
  $("attachment-bar").hidden = !state.attachment;
  if (state.attachment) {
    $("attachment-name").textContent = `${state.attachment.name} · ${sizeText(state.attachment.blob.size)}`;
    const text = $("text");
    if (chat && chat.type !== "private" && !text.value) text.placeholder = "Caption (e.g. /predict, so the bot answers)";
    else text.placeholder = "Add a caption…";
  }
}

function renderAll() {
  renderPeople();
  renderChatList();
  renderHeader();
  renderMessages(true);
  renderComposer();
}

// --- actions -------------------------------------------------------------------------------------

function openChat(chatId) {
  const chat = state.chats.get(chatId);
  if (!chat) return;
  state.chatId = chatId;
  state.unread.delete(chatId);
  state.replyTo = null;
  document.body.classList.add("chat-open");
  renderAll(); // someone else's private chat is shown read-only, with a button to become them
}

// Become another person; a private chat then follows to that person's own private chat.
function applyCurrentUser(userId) {
  state.currentUserId = userId;
  const current = state.chats.get(state.chatId);
  if (current && current.type === "private" && current.id !== userId && state.chats.has(userId)) {
    state.chatId = userId;
    state.replyTo = null;
    state.unread.delete(userId);
  }
  renderAll();
}

function setCurrentUser(userId) {
  sessionStorage.setItem(TAB_USER_KEY, String(userId));
  applyCurrentUser(userId);
}

// Only its owner writes in a private chat: someone else's is read-only until I choose to be them.
function notMine(chat) {
  return Boolean(chat && chat.type === "private" && chat.id !== state.currentUserId);
}

function startReply(messageId) {
  state.replyTo = messageId;
  renderComposer();
  $("text").focus();
}

function takeReply() {
  const replyTo = state.replyTo;
  state.replyTo = null;
  renderComposer();
  return replyTo;
}

function canWrite() {
  const chat = state.chats.get(state.chatId);
  if (!notMine(chat)) return true;
  toast(`Only ${$("owner-switch").textContent.replace(/^Be /, "")} can write in this chat: press “${$("owner-switch").textContent}” first`);
  return false;
}

async function sendText(text) {
  if (!canWrite()) return;
  const chatId = state.chatId;
  const replyTo = takeReply();
  await post("send_text", { chat_id: chatId, user_id: state.currentUserId, text, reply_to_message_id: replyTo });
}

async function sendFile(blob, name, asDocument, caption) {
  if (!canWrite()) return;
  const form = new FormData();
  form.append("chat_id", state.chatId);
  form.append("user_id", state.currentUserId);
  form.append("as_document", asDocument ? "1" : "0");
  if (caption) form.append("caption", caption);
  const replyTo = takeReply();
  if (replyTo !== null) form.append("reply_to_message_id", replyTo);
  form.append("file", blob, name);
  await post("send_photo", form);
}

async function send() {
  const text = $("text");
  const value = text.value.trim();
  hideCommands();
  if (state.attachment) {
    const { blob, name } = state.attachment;
    const asDocument = $("as-document").checked;
    clearAttachment();
    text.value = "";
    autosize();
    await sendFile(blob, name, asDocument, value);
    return;
  }
  if (!value) return;
  text.value = "";
  autosize();
  await sendText(value);
}

function setAttachment(file) {
  if (!file) return;
  if (!file.type.startsWith("image/") && !$("as-document").checked) {
    $("as-document").checked = true; // not an image: it can only go as a file
  }
  if (state.attachment && state.attachment.url) URL.revokeObjectURL(state.attachment.url);
  const url = URL.createObjectURL(file);
  state.attachment = { blob: file, name: file.name || "image.png", url };
  $("attachment-preview").src = file.type.startsWith("image/") ? url : "";
  renderComposer();
  $("text").focus();
}

function clearAttachment() {
  if (state.attachment && state.attachment.url) URL.revokeObjectURL(state.attachment.url);
  state.attachment = null;
  $("as-document").checked = false;
  $("attachment-preview").removeAttribute("src");
  renderComposer();
  renderHeader();
}

// --- commands menu -------------------------------------------------------------------------------

function showCommands(filter) {
  const chat = state.chats.get(state.chatId);
  const commands = (chat && chat.commands) || [];
  const shown = commands.filter((command) => `/${command.command}`.startsWith(filter || "/"));
  const popup = $("commands-popup");
  if (!shown.length) { popup.hidden = true; return; }
  popup.replaceChildren(...shown.map((command) => {
    const row = el("button", "command-row");
    row.type = "button";
    row.appendChild(el("span", "command-name", `/${command.command}`));
    row.appendChild(el("span", "command-description", command.description));
    row.addEventListener("click", () => {
      hideCommands();
      const text = $("text");
      if (command.command === "retrain" || command.command === "predict") {
        text.value = `/${command.command} `; // these take an argument or a reply
        text.focus();
      } else {
        text.value = "";
        sendText(`/${command.command}`).catch(() => {});
      }
    });
    return row;
  }));
  popup.hidden = false;
}

function hideCommands() {
  $("commands-popup").hidden = true;
}

// --- drawing -------------------------------------------------------------------------------------

const drawing = { active: false, last: null, dirty: false };

function inkColors() {
  return $("draw-invert").checked ? ["#000000", "#ffffff"] : ["#ffffff", "#111111"];
}

function clearCanvas() {
  const canvas = $("canvas");
  const context = canvas.getContext("2d");
  context.fillStyle = inkColors()[0];
  context.fillRect(0, 0, canvas.width, canvas.height);
  drawing.dirty = false;
}

function canvasPoint(event) {
  const canvas = $("canvas");
  const box = canvas.getBoundingClientRect();
  return {
    x: ((event.clientX - box.left) / box.width) * canvas.width,
    y: ((event.clientY - box.top) / box.height) * canvas.height,
  };
}

function strokeTo(point) {
  const context = $("canvas").getContext("2d");
  context.strokeStyle = inkColors()[1];
  context.fillStyle = inkColors()[1];
  context.lineWidth = 20;
  context.lineCap = "round";
  context.lineJoin = "round";
  context.beginPath();
  if (drawing.last) {
    context.moveTo(drawing.last.x, drawing.last.y);
    context.lineTo(point.x, point.y);
    context.stroke();
  } else {
    context.arc(point.x, point.y, 10, 0, Math.PI * 2);
    context.fill();
  }
  drawing.last = point;
  drawing.dirty = true;
}

function setUpCanvas() {
  const canvas = $("canvas");
  clearCanvas();
  canvas.addEventListener("pointerdown", (event) => {
    canvas.setPointerCapture(event.pointerId);
    drawing.active = true;
    drawing.last = null;
    strokeTo(canvasPoint(event));
  });
  canvas.addEventListener("pointermove", (event) => {
    if (drawing.active) strokeTo(canvasPoint(event));
  });
  const end = () => { drawing.active = false; drawing.last = null; };
  canvas.addEventListener("pointerup", end);
  canvas.addEventListener("pointercancel", end);
  $("draw-clear").addEventListener("click", clearCanvas);
  $("draw-invert").addEventListener("change", clearCanvas);
  $("draw-send").addEventListener("click", () => {
    if (!drawing.dirty) { toast("Draw a digit first"); return; }
    canvas.toBlob((blob) => {
      const caption = $("text").value.trim();
      $("text").value = "";
      autosize();
      sendFile(blob, "drawing.png", false, caption).then(clearCanvas).catch(() => {});
    }, "image/png");
  });
}

// --- lightbox, text box, drag and drop -----------------------------------------------------------

function openLightbox(url) {
  const box = $("lightbox");
  box.querySelector("img").src = url;
  box.hidden = false;
}

function autosize() {
  const text = $("text");
  text.style.height = "auto";
  text.style.height = `${Math.min(text.scrollHeight, 160)}px`;
}

function setUpDragAndDrop() {
  const chat = $("chat");
  const zone = $("drop-zone");
  let depth = 0;
  chat.addEventListener("dragenter", (event) => {
    if (!event.dataTransfer || ![...event.dataTransfer.types].includes("Files")) return;
    depth += 1;
    zone.hidden = false;
  });
  chat.addEventListener("dragleave", () => {
    depth = Math.max(depth - 1, 0);
    if (!depth) zone.hidden = true;
  });
  chat.addEventListener("dragover", (event) => event.preventDefault());
  chat.addEventListener("drop", (event) => {
    event.preventDefault();
    depth = 0;
    zone.hidden = true;
    const file = event.dataTransfer && event.dataTransfer.files[0];
    if (file) setAttachment(file);
  });
}

function setUpControls() {
  const text = $("text");
  $("person").addEventListener("change", (event) => setCurrentUser(Number(event.target.value)));
  $("owner-switch").addEventListener("click", () => setCurrentUser(state.chatId));
  $("admin-toggle").addEventListener("change", (event) => {
    post("admin", { user_id: state.currentUserId, is_admin: event.target.checked }).catch(() => {});
  });
  $("back").addEventListener("click", () => document.body.classList.remove("chat-open"));
  $("group-button").addEventListener("click", () => { $("group-settings").hidden = !$("group-settings").hidden; });
  for (const [id, name] of [["group-privacy", "privacy"], ["group-bot-admin", "bot_is_admin"]]) {
    $(id).addEventListener("change", (event) => {
      post("group", { chat_id: state.chatId, [name]: event.target.checked }).catch(() => {});
    });
  }
  $("send-button").addEventListener("click", () => { send().catch(() => {}); });
  text.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      send().catch(() => {});
    } else if (event.key === "Escape") {
      hideCommands();
      takeReply();
    }
  });
  text.addEventListener("input", () => {
    autosize();
    const value = text.value;
    if (value.startsWith("/") && !/\s/.test(value) && !state.attachment) showCommands(value);
    else hideCommands();
  });
  $("menu-button").addEventListener("click", () => {
    if ($("commands-popup").hidden) showCommands("/");
    else hideCommands();
  });
  $("attach-button").addEventListener("click", () => $("file-input").click());
  $("camera-button").addEventListener("click", () => $("camera-input").click());
  for (const id of ["file-input", "camera-input"]) {
    $(id).addEventListener("change", (event) => {
      setAttachment(event.target.files[0]);
      event.target.value = "";
    });
  }
  $("attachment-cancel").addEventListener("click", clearAttachment);
  $("reply-cancel").addEventListener("click", takeReply);
  $("draw-button").addEventListener("click", () => {
    $("draw-panel").hidden = !$("draw-panel").hidden;
    $("draw-button").classList.toggle("active", !$("draw-panel").hidden);
    $("messages").scrollTop = $("messages").scrollHeight; // keep the last answer in view
  });
  $("lightbox").addEventListener("click", () => { $("lightbox").hidden = true; });
  document.addEventListener("keydown", (event) => {
    if (event.key === "Escape") $("lightbox").hidden = true;
  });
  document.addEventListener("click", (event) => {
    if (!event.target.closest("#group-settings, #group-button")) $("group-settings").hidden = true;
    if (!event.target.closest("#commands-popup, #menu-button, #text")) hideCommands();
  });
  // Text pasted as an image (a screenshot) becomes an attachment, as in Telegram.
  text.addEventListener("paste", (event) => {
    const file = [...(event.clipboardData?.files || [])].find((item) => item.type.startsWith("image/"));
    if (file) { event.preventDefault(); setAttachment(file); }
  });
}

document.addEventListener("DOMContentLoaded", () => {
  document.body.classList.add("chat-open");
  setUpControls();
  setUpCanvas();
  setUpDragAndDrop();
  connectEvents();
});

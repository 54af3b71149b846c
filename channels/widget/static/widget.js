/* Open Lines chat widget: one script tag puts a chat button and window on any page.
 *
 *   <script src="https://ENGINE/widget/WIDGET_ID/widget.js" async></script>
 *
 * Plain JavaScript, no build step, no framework. Everything lives in a shadow root, so the
 * host page's styles neither reach in nor are touched. Every text is set with textContent:
 * nothing a visitor, an operator or a file name says is ever parsed as markup.
 *
 * The conversation comes over one WebSocket that resumes from a cursor (the highest seq
 * shown); messages go out one at a time over POST with a client id the engine
 * de-duplicates, from an outbox kept in localStorage, so a reload, a new tab or a network
 * drop neither loses nor doubles anything (docs/channels/widget.md).
 */
(function () {
  "use strict";

  var script = document.currentScript;
  if (!script || !script.src) return;
  var source = new URL(script.src);
  var match = source.pathname.match(/\/widget\/([A-Za-z0-9_-]+)\/widget\.js$/);
  if (!match) return;
  var widgetId = match[1];
  var base = source.origin + "/widget/" + widgetId;
  var pageMode = script.getAttribute("data-mode") === "page";
  var storeKey = "openlines-widget:" + widgetId;

  var BACKOFF_MIN_MS = 500;
  var BACKOFF_MAX_MS = 30000;

  // ---- state kept across reloads and tabs --------------------------------------------

  function load() {
    try {
      var saved = JSON.parse(localStorage.getItem(storeKey) || "{}");
      return { token: saved.token || null, outbox: Array.isArray(saved.outbox) ? saved.outbox : [] };
    } catch (e) {
      return { token: null, outbox: [] };
    }
  }

  function save() {
    try {
      localStorage.setItem(storeKey, JSON.stringify({ token: state.token, outbox: state.outbox }));
    } catch (e) {
      /* storage full or blocked: the widget works for this page's life */
    }
  }

  var state = load();
  var settings = null;
  var details = {};
  var cursor = 0;
  var shown = {}; // client ids of the visitor's messages already in the log
  var socket = null;
  var socketBackoff = BACKOFF_MIN_MS;
  var sending = false;
  var sendBackoff = BACKOFF_MIN_MS;
  var opened = false;

  function newClientId() {
    if (window.crypto && crypto.randomUUID) return crypto.randomUUID();
    var bytes = new Uint8Array(16);
    crypto.getRandomValues(bytes);
    return Array.prototype.map.call(bytes, function (b) { return (b + 256).toString(16).slice(1); }).join("");
  }

  function jittered(ms) {
    return ms / 2 + Math.random() * (ms / 2);
  }

  // ---- the engine's API ---------------------------------------------------------------

  function call(path, body, headers) {
    var sent = { "Content-Type": "application/json" };
    if (state.token) sent.Authorization = "Bearer " + state.token;
    for (var name in headers || {}) sent[name] = headers[name];
    return fetch(base + path, {
      method: "POST",
      headers: sent,
      body: body instanceof Blob ? body : JSON.stringify(body),
      credentials: "omit",
      mode: "cors",
    }).then(function (response) {
      return response.json().then(
        function (data) { return { status: response.status, data: data }; },
        function () { return { status: response.status, data: {} }; }
      );
    });
  }

  function startSession() {
    return call("/session", { token: state.token }).then(function (answer) {
      if (answer.status !== 200 && answer.status !== 201) throw new Error("session " + answer.status);
      state.token = answer.data.token;
      settings = answer.data.settings;
      details = answer.data.details || {};
      save();
    });
  }

  // ---- the view ----------------------------------------------------------------------

  var host = document.createElement("div");
  host.setAttribute("data-openlines-widget", widgetId);
  var root = host.attachShadow({ mode: "open" });
  var ui = {};

  function el(tag, attrs, text) {
    var node = document.createElement(tag);
    for (var name in attrs || {}) node.setAttribute(name, attrs[name]);
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  function styles(look) {
    var side = look.position === "bottom-left" ? "left" : "right";
    var accent = look.accent_colour;
    var onAccent = look.text_colour;
    return [
      ":host{all:initial}",
      "*{box-sizing:border-box;font-family:system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;font-size:15px}",
      ".launcher{position:fixed;bottom:20px;" + side + ":20px;z-index:2147483000;border:0;border-radius:28px;padding:14px 20px;background:" + accent + ";color:" + onAccent + ";cursor:pointer;box-shadow:0 4px 14px rgba(0,0,0,.25)}",
      ".launcher:focus-visible,button:focus-visible,input:focus-visible,textarea:focus-visible{outline:3px solid #ffbf47;outline-offset:2px}",
      ".panel{position:fixed;bottom:84px;" + side + ":20px;z-index:2147483000;width:min(370px,calc(100vw - 40px));height:min(560px,calc(100vh - 110px));display:flex;flex-direction:column;background:#fff;color:#1b1b1b;border-radius:12px;box-shadow:0 8px 30px rgba(0,0,0,.3);overflow:hidden}",
      ".panel[hidden]{display:none}",
      ".page .panel{position:static;width:100%;height:100vh;border-radius:0;box-shadow:none}",
      "header{display:flex;align-items:center;justify-content:space-between;padding:12px 14px;background:" + accent + ";color:" + onAccent + "}",
      "h2{margin:0;font-size:17px;font-weight:600}",
      ".callback-toggle{margin-left:auto;margin-right:6px;border:1px solid " + onAccent + ";background:transparent;color:inherit;border-radius:14px;padding:4px 10px;cursor:pointer;font-size:13px}",
      ".close{border:0;background:transparent;color:inherit;font-size:22px;line-height:1;cursor:pointer;padding:2px 8px}",
      ".status{padding:6px 14px;background:#fff4ce;color:#3b2f00;font-size:13px}",
      ".status[hidden]{display:none}",
      ".log{flex:1;overflow-y:auto;padding:12px;display:flex;flex-direction:column;gap:8px;background:#f6f7f9}",
      ".msg{max-width:85%;padding:8px 11px;border-radius:10px;white-space:pre-wrap;overflow-wrap:anywhere;line-height:1.35}",
      ".msg.visitor{align-self:flex-end;background:" + accent + ";color:" + onAccent + "}",
      ".msg.line{align-self:flex-start;background:#fff;border:1px solid #dde1e6}",
      ".msg.pending{opacity:.65}",
      ".msg img{display:block;max-width:100%;max-height:220px;border-radius:6px;margin-top:4px}",
      ".msg a{color:inherit}",
      ".from-line{display:flex;align-items:flex-end;gap:8px;align-self:flex-start;max-width:92%}",
      ".from-column{display:flex;flex-direction:column;gap:2px;min-width:0}",
      ".from-column .msg{max-width:100%}",
      ".sender{font-size:12px;color:#454b52}",
      ".avatar{flex:none;width:32px;height:32px;border-radius:50%;object-fit:cover;background:#dde1e6}",
      ".avatar.initials{display:inline-flex;align-items:center;justify-content:center;font-size:13px;font-weight:600;color:#1b1b1b}",
      ".who{position:absolute;width:1px;height:1px;overflow:hidden;clip:rect(0 0 0 0);white-space:nowrap}",
      ".state{display:block;font-size:11px;opacity:.8;margin-top:3px}",
      ".typing{padding:4px 14px;font-size:13px;color:#454b52;background:#f6f7f9;font-style:italic}",
      ".typing[hidden]{display:none}",
      ".choices{display:flex;flex-wrap:wrap;gap:6px;margin-top:6px}",
      ".choices button{border:1px solid " + accent + ";background:#fff;color:#1b1b1b;border-radius:14px;padding:5px 11px;cursor:pointer}",
      ".choices button:disabled{opacity:.5;cursor:default}",
      "form{display:flex;gap:6px;padding:10px;border-top:1px solid #dde1e6;background:#fff;align-items:flex-end}",
      "textarea{flex:1;resize:none;min-height:40px;max-height:120px;padding:9px;border:1px solid #9aa3ad;border-radius:8px}",
      ".send{border:0;border-radius:8px;padding:10px 14px;background:" + accent + ";color:" + onAccent + ";cursor:pointer}",
      ".attach{display:inline-flex;align-items:center;justify-content:center;width:40px;height:40px;border:1px solid #9aa3ad;border-radius:8px;cursor:pointer;background:#fff;color:#1b1b1b}",
      ".attach input{position:absolute;width:1px;height:1px;opacity:0}",
      ".details{display:flex;flex-direction:column;align-items:stretch;gap:6px;padding:10px 14px;border-bottom:1px solid #dde1e6;background:#fff}",
      ".details .actions{display:flex;gap:8px}",
      ".details .later{background:#fff;color:#1b1b1b;border:1px solid #9aa3ad}",
      ".details[hidden]{display:none}",
      ".details label{display:flex;flex-direction:column;font-size:13px;gap:2px}",
      ".details input{padding:7px;border:1px solid #9aa3ad;border-radius:6px}",
      ".details p{margin:0;font-size:13px}",
      ".details button{align-self:flex-start;border:0;border-radius:8px;padding:7px 12px;background:" + accent + ";color:" + onAccent + ";cursor:pointer}",
      ".visually-hidden{position:absolute;width:1px;height:1px;overflow:hidden;clip:rect(0 0 0 0);white-space:nowrap}",
    ].join("\n");
  }

  function adoptStyles(css) {
    try {
      var sheet = new CSSStyleSheet();
      sheet.replaceSync(css);
      root.adoptedStyleSheets = [sheet];
    } catch (e) {
      root.appendChild(el("style", {}, css));
    }
  }

  function build() {
    var texts = settings.texts;
    adoptStyles(styles(settings.look));
    var frame = el("div", { class: pageMode ? "page" : "embedded" });
    root.appendChild(frame);

    if (!pageMode) {
      ui.launcher = el("button", {
        class: "launcher",
        type: "button",
        "aria-expanded": "false",
        "aria-controls": "openlines-panel",
      }, texts.button_label);
      ui.launcher.addEventListener("click", function () { toggle(!opened); });
      frame.appendChild(ui.launcher);
    }

    ui.panel = el("section", { id: "openlines-panel", class: "panel", role: "dialog", "aria-labelledby": "openlines-title" });
    if (!pageMode) ui.panel.hidden = true;
    var header = el("header");
    header.appendChild(el("h2", { id: "openlines-title" }, texts.title));
    if (settings.callback) {
      ui.callbackToggle = el("button", {
        class: "callback-toggle",
        type: "button",
        "aria-expanded": "false",
        "aria-controls": "openlines-callback",
      }, texts.callback_label);
      ui.callbackToggle.addEventListener("click", function () {
        var open = ui.callback.hidden;
        ui.callback.hidden = !open;
        ui.callbackToggle.setAttribute("aria-expanded", open ? "true" : "false");
        if (open) ui.callback.querySelector("input").focus();
      });
      header.appendChild(ui.callbackToggle);
    }
    if (!pageMode) {
      var close = el("button", { class: "close", type: "button", "aria-label": "Close chat" }, "×");
      close.addEventListener("click", function () { toggle(false); });
      header.appendChild(close);
    }
    ui.panel.appendChild(header);

    ui.status = el("div", { class: "status", role: "status", "aria-live": "polite" });
    ui.status.hidden = true;
    ui.panel.appendChild(ui.status);

    ui.details = buildDetails(texts);
    ui.panel.appendChild(ui.details);
    ui.callback = buildCallback(texts);
    ui.panel.appendChild(ui.callback);

    ui.log = el("div", { class: "log", role: "log", "aria-live": "polite", "aria-label": "Messages", tabindex: "0" });
    ui.panel.appendChild(ui.log);
    ui.typing = el("div", { class: "typing", "aria-live": "polite" }, settings.texts.typing);
    ui.typing.hidden = true;
    ui.panel.appendChild(ui.typing);

    var form = el("form", { "aria-label": "Write a message" });
    var attach = el("label", { class: "attach", title: "Attach a file" });
    attach.appendChild(el("span", { "aria-hidden": "true" }, "+"));
    ui.file = el("input", { type: "file", "aria-label": "Attach a file", accept: settings.file_types.join(",") });
    attach.appendChild(ui.file);
    form.appendChild(attach);
    form.appendChild(el("label", { for: "openlines-input", class: "visually-hidden" }, texts.placeholder));
    ui.input = el("textarea", { id: "openlines-input", rows: "1", placeholder: texts.placeholder, maxlength: String(settings.max_text_chars) });
    form.appendChild(ui.input);
    form.appendChild(el("button", { class: "send", type: "submit" }, texts.send_label));
    ui.panel.appendChild(form);
    frame.appendChild(ui.panel);

    form.addEventListener("submit", function (event) {
      event.preventDefault();
      var text = ui.input.value.trim();
      if (!text) return;
      ui.input.value = "";
      enqueue({ text: text });
    });
    ui.input.addEventListener("keydown", function (event) {
      if (event.key === "Enter" && !event.shiftKey) {
        event.preventDefault();
        form.requestSubmit();
      }
    });
    ui.input.addEventListener("input", function () {
      if (ui.input.value.trim()) sayTyping();
    });
    ui.file.addEventListener("change", function () {
      var file = ui.file.files && ui.file.files[0];
      ui.file.value = "";
      if (file) upload(file);
    });
    ui.panel.addEventListener("keydown", function (event) {
      if (event.key === "Escape" && !pageMode) {
        toggle(false);
      }
    });
    document.body.appendChild(host);
  }

  function buildDetails(texts) {
    var box = el("form", { class: "details", "aria-label": "Your details" });
    var fields = settings.form.fields;
    box.hidden = !fields.length || hasDetails();
    if (!fields.length) return box;
    box.appendChild(el("p", {}, texts.form_intro));
    var labels = { name: "Name", phone: "Phone", email: "E-mail" };
    var types = { name: "text", phone: "tel", email: "email" };
    var inputs = {};
    fields.forEach(function (field) {
      var label = el("label", {}, labels[field]);
      var input = el("input", { type: types[field], name: field, autocomplete: field === "phone" ? "tel" : field });
      label.appendChild(input);
      box.appendChild(label);
      inputs[field] = input;
    });
    var actions = el("div", { class: "actions" });
    actions.appendChild(el("button", { type: "submit" }, "Save"));
    if (!settings.form.required) {
      var later = el("button", { type: "button", class: "later" }, "Not now");
      later.addEventListener("click", function () {
        box.hidden = true;
        ui.input.focus();
      });
      actions.appendChild(later);
    }
    box.appendChild(actions);
    box.addEventListener("submit", function (event) {
      event.preventDefault();
      var given = { client_id: newClientId() };
      fields.forEach(function (field) {
        var value = inputs[field].value.trim();
        if (value) given[field] = value;
      });
      call("/details", given).then(function (answer) {
        if (answer.status === 200) {
          fields.forEach(function (field) { if (given[field]) details[field] = given[field]; });
          box.hidden = true;
          ui.input.focus();
          pump();
        } else {
          say((answer.data && answer.data.message) || "Please check your details.");
        }
      }, function () { say(settings.texts.offline_note); });
    });
    return box;
  }

  function buildCallback(texts) {
    var box = el("form", { id: "openlines-callback", class: "details", "aria-label": texts.callback_label });
    box.hidden = true;
    box.appendChild(el("p", {}, texts.callback_intro));
    var fields = [["phone", "Phone", "tel", true], ["name", "Name", "text", false], ["note", "When to call", "text", false]];
    var inputs = {};
    fields.forEach(function (field) {
      var label = el("label", {}, field[1]);
      var input = el("input", { type: field[2], name: "callback-" + field[0] });
      if (field[3]) input.required = true;
      label.appendChild(input);
      box.appendChild(label);
      inputs[field[0]] = input;
    });
    var actions = el("div", { class: "actions" });
    actions.appendChild(el("button", { type: "submit" }, texts.callback_label));
    box.appendChild(actions);
    box.addEventListener("submit", function (event) {
      event.preventDefault();
      var given = { client_id: newClientId() };
      fields.forEach(function (field) {
        var value = inputs[field[0]].value.trim();
        if (value) given[field[0]] = value;
      });
      call("/callback", given).then(function (answer) {
        if (answer.status === 200) {
          box.hidden = true;
          ui.callbackToggle.setAttribute("aria-expanded", "false");
          say(texts.callback_done);
          ui.input.focus();
        } else {
          say((answer.data && answer.data.message) || "Please check the number.");
        }
      }, function () { say(settings.texts.offline_note); });
    });
    return box;
  }

  function hasDetails() {
    return Boolean(details.name || details.phone || details.email);
  }

  function toggle(open) {
    opened = open;
    if (pageMode) return;
    ui.panel.hidden = !open;
    ui.launcher.setAttribute("aria-expanded", open ? "true" : "false");
    if (open) {
      (ui.details.hidden ? ui.input : ui.details.querySelector("input")).focus();
      ui.log.scrollTop = ui.log.scrollHeight;
    } else {
      ui.launcher.focus();
    }
  }

  function say(text) {
    ui.status.textContent = text || "";
    ui.status.hidden = !text;
  }

  function contentNode(content) {
    var box = document.createDocumentFragment();
    if (content.kind === "text") {
      box.appendChild(document.createTextNode(content.text));
      return box;
    }
    var file = content.file || {};
    var url = file.url || content.url;
    var name = file.name || content.name || "file";
    if (content.kind === "image" && isHttp(url)) {
      box.appendChild(el("img", { src: url, alt: name }));
    } else if (isHttp(url)) {
      box.appendChild(el("a", { href: url, target: "_blank", rel: "noopener noreferrer", download: "" }, name));
    } else {
      box.appendChild(document.createTextNode(name));
    }
    if (content.caption) box.appendChild(el("span", { class: "state" }, content.caption));
    return box;
  }

  function isHttp(url) {
    return typeof url === "string" && /^https?:\/\//.test(url);
  }

  function bubble(from, content, clientId, senderName) {
    var node = el("div", { class: "msg " + from });
    node.appendChild(el("span", { class: "who" }, from === "visitor" ? "You: " : (senderName || settings.texts.title) + ": "));
    node.appendChild(contentNode(content));
    if (clientId) node.setAttribute("data-client-id", clientId);
    return node;
  }

  function senderName(sender) {
    return sender && typeof sender.name === "string" && sender.name ? sender.name : null;
  }

  // Who sends an operator's reply, as the line's persona says (docs/channels/widget.md,
  // "Sender"): the name above the message and the avatar beside it, an <img> whose URL is
  // only ever an attribute, replaced by the name's initials when it does not load.
  function withSender(node, sender) {
    var name = senderName(sender);
    if (!name && !(sender && isHttps(sender.avatar_url))) return node;
    var row = el("div", { class: "from-line" });
    row.appendChild(avatarNode(name, sender.avatar_url));
    var column = el("div", { class: "from-column" });
    if (name) column.appendChild(el("span", { class: "sender", "aria-hidden": "true" }, name));
    column.appendChild(node);
    row.appendChild(column);
    return row;
  }

  function initials(name) {
    var words = (name || "").trim().split(/\s+/).filter(Boolean);
    var letters = words.slice(0, 2).map(function (word) { return Array.from(word)[0]; });
    return letters.join("").toUpperCase();
  }

  function avatarNode(name, url) {
    var fallback = el("span", { class: "avatar initials", "aria-hidden": "true" }, initials(name));
    if (!isHttps(url)) return fallback;
    var img = el("img", {
      class: "avatar",
      src: url,
      alt: name || "",
      width: "32",
      height: "32",
      referrerpolicy: "no-referrer",
      decoding: "async",
    });
    img.addEventListener("error", function () {
      if (img.parentNode) img.parentNode.replaceChild(fallback, img);
    });
    return img;
  }

  function isHttps(url) {
    return typeof url === "string" && /^https:\/\//.test(url);
  }

  function atBottom() {
    return ui.log.scrollHeight - ui.log.scrollTop - ui.log.clientHeight < 40;
  }

  function show(entry) {
    if (entry.seq <= cursor) return; // seen: a resume's overlap, or another tab's echo
    cursor = entry.seq;
    if (entry.from === "typing") {
      showTyping();
      return;
    }
    if (entry.from === "line") hideTyping();
    var follow = atBottom();
    if (entry.from === "visitor") {
      shown[entry.client_id] = true;
      var pending = ui.log.querySelector('.pending[data-client-id="' + cssEscape(entry.client_id) + '"]');
      if (pending) pending.remove();
    }
    var sender = entry.from === "line" && entry.sender && typeof entry.sender === "object" ? entry.sender : null;
    var node = bubble(entry.from, entry.content, entry.client_id, senderName(sender));
    node.setAttribute("data-seq", String(entry.seq));
    if (entry.buttons && entry.buttons.length) node.appendChild(choices(entry.buttons));
    ui.log.appendChild(sender ? withSender(node, sender) : node);
    if (follow) ui.log.scrollTop = ui.log.scrollHeight;
  }

  var typingTimer = null;

  function showTyping() {
    ui.typing.hidden = false;
    clearTimeout(typingTimer);
    typingTimer = setTimeout(hideTyping, 6000);
  }

  function hideTyping() {
    clearTimeout(typingTimer);
    ui.typing.hidden = true;
  }

  function cssEscape(value) {
    return window.CSS && CSS.escape ? CSS.escape(value) : String(value).replace(/[^A-Za-z0-9_-]/g, "");
  }

  function choices(rows) {
    var box = el("div", { class: "choices", role: "group", "aria-label": "Choices" });
    rows.forEach(function (row) {
      row.forEach(function (button) {
        var node = el("button", { type: "button" }, button.label);
        node.addEventListener("click", function () {
          box.querySelectorAll("button").forEach(function (b) { b.disabled = true; });
          enqueue({ text: button.label, button: button.payload });
        });
        box.appendChild(node);
      });
    });
    return box;
  }

  function showPending(item) {
    if (shown[item.client_id]) return;
    var content = item.text ? { kind: "text", text: item.text } : { kind: "file", name: item.name };
    var node = bubble("visitor", content, item.client_id);
    node.classList.add("pending");
    node.appendChild(el("span", { class: "state" }, "Sending…"));
    ui.log.appendChild(node);
    ui.log.scrollTop = ui.log.scrollHeight;
  }

  // ---- sending: an outbox, in order, exactly once --------------------------------------

  // The operator sees that the visitor types: one signal per settings.typing_every_s at
  // most, not one per keystroke; best effort (a lost one is not retried).
  var typingSentAt = 0;

  function sayTyping() {
    var now = Date.now();
    if (now - typingSentAt < settings.typing_every_s * 1000 || !navigator.onLine) return;
    typingSentAt = now;
    call("/typing", {}).catch(function () { /* best effort */ });
  }

  function enqueue(message) {
    var item = { client_id: newClientId() };
    for (var key in message) item[key] = message[key];
    state.outbox.push(item);
    save();
    showPending(item);
    pump();
  }

  function upload(file) {
    if (file.size > settings.max_file_bytes) {
      say("The file is too large.");
      return;
    }
    if (settings.file_types.indexOf(file.type) < 0) {
      say("Files of this type cannot be sent.");
      return;
    }
    say("");
    call("/files", file, { "Content-Type": file.type, "X-File-Name": encodeURIComponent(file.name) }).then(
      function (answer) {
        if (answer.status === 201) enqueue({ file_id: answer.data.file_id, name: answer.data.name });
        else say((answer.data && answer.data.message) || "The file was not sent.");
      },
      function () { say(settings.texts.offline_note); }
    );
  }

  function pump() {
    if (sending || !state.outbox.length || !settings) return;
    if (settings.form.required && !hasDetails()) {
      ui.details.hidden = false;
      return;
    }
    sending = true;
    var item = state.outbox[0];
    var body = { client_id: item.client_id };
    if (item.text) body.text = item.text;
    if (item.button) body.button = item.button;
    if (item.file_id) body.file_id = item.file_id;
    call("/messages", body).then(function (answer) {
      sending = false;
      if (answer.status === 200) {
        sendBackoff = BACKOFF_MIN_MS;
        finish(item);
        pump();
      } else if (answer.status === 429 || answer.status >= 500) {
        retryLater();
      } else if (answer.status === 401) {
        startSession().then(pump, retryLater);
      } else {
        // Refused for good (too long, a file gone): say so and go on with the next one.
        finish(item);
        say((answer.data && answer.data.message) || "A message was not sent.");
        pump();
      }
    }, function () {
      sending = false;
      say(settings.texts.offline_note);
      retryLater();
    });
  }

  function finish(item) {
    state.outbox = state.outbox.filter(function (other) { return other.client_id !== item.client_id; });
    save();
  }

  function retryLater() {
    var wait = jittered(sendBackoff);
    sendBackoff = Math.min(sendBackoff * 2, BACKOFF_MAX_MS);
    setTimeout(pump, wait);
  }

  // ---- receiving: one live connection, resumed from the cursor ------------------------

  function connect() {
    if (socket) return;
    var url = base.replace(/^http/, "ws") + "/live";
    var ws = new WebSocket(url);
    socket = ws;
    ws.onopen = function () {
      ws.send(JSON.stringify({ token: state.token, after: cursor }));
    };
    ws.onmessage = function (event) {
      var frame;
      try { frame = JSON.parse(event.data); } catch (e) { return; }
      if (frame.live) {
        socketBackoff = BACKOFF_MIN_MS;
        say("");
        pump();
      } else if (frame.error === "auth") {
        state.token = null;
      } else if (typeof frame.seq === "number") {
        show(frame);
      }
    };
    ws.onclose = function () {
      socket = null;
      if (!state.token) {
        startSession().then(connect, reconnectLater);
        return;
      }
      say(settings.texts.offline_note);
      reconnectLater();
    };
  }

  function reconnectLater() {
    var wait = jittered(socketBackoff);
    socketBackoff = Math.min(socketBackoff * 2, BACKOFF_MAX_MS);
    setTimeout(connect, wait);
  }

  window.addEventListener("online", function () {
    socketBackoff = BACKOFF_MIN_MS;
    sendBackoff = BACKOFF_MIN_MS;
    if (socket) socket.close(); // a connection that outlived the drop may be dead
    else connect();
    pump();
  });
  window.addEventListener("offline", function () {
    if (settings) say(settings.texts.offline_note);
  });
  window.addEventListener("storage", function (event) {
    if (event.key === storeKey) state.outbox = load().outbox; // another tab sent or queued
  });

  function begin() {
    startSession().then(function () {
      build();
      state.outbox.forEach(showPending);
      connect();
      if (pageMode) toggle(true);
    }, function () {
      setTimeout(begin, jittered(socketBackoff));
      socketBackoff = Math.min(socketBackoff * 2, BACKOFF_MAX_MS);
    });
  }

  if (document.body) begin();
  else document.addEventListener("DOMContentLoaded", begin);
})();

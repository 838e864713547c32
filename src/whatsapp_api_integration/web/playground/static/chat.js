/* The playground: you are a WhatsApp contact; the bot's replies render as WhatsApp shows them.
 * What you write or tap is posted to /playground/api/messages, which sends it through the
 * gateway's real webhook. The conversation is polled; in sandbox mode the page reports each
 * reply it shows as delivered (the phone got it) and "Mark as read" reports them read. */
(function () {
  "use strict";
  var body = document.body;
  var urls = {
    info: body.dataset.infoUrl,
    messages: body.dataset.messagesUrl,
    conversation: body.dataset.conversationUrl,
    statuses: body.dataset.statusesUrl,
  };
  var sandbox = body.dataset.sandbox === "true";
  var formatInto = window.WhatsAppFormat.formatInto;
  var POLL_MS = 700;
  var DEFAULT_CONTACT = { contact: "5561987654321", name: "Maria" };

  var state = {
    contact: null,
    name: "",
    lastJson: "",
    reported: new Set(), // wamids already reported delivered
    known: [], // contacts from the server and this browser
    sheetChoice: null,
  };

  var $ = function (id) { return document.getElementById(id); };
  var messagesEl = $("messages");

  function el(tag, className, text) {
    var node = document.createElement(tag);
    if (className) node.className = className;
    if (text != null) node.textContent = text;
    return node;
  }

  function isWebUrl(value) {
    return typeof value === "string" && /^https?:\/\//i.test(value);
  }

  function clock(seconds) {
    if (!seconds) return "";
    var d = new Date(seconds * 1000);
    return String(d.getHours()).padStart(2, "0") + ":" + String(d.getMinutes()).padStart(2, "0");
  }

  function api(url, payload) {
    var options = payload === undefined
      ? { credentials: "same-origin" }
      : {
          method: "POST",
          credentials: "same-origin",
          headers: { "Content-Type": "application/json" },
          body: JSON.stringify(payload),
        };
    return fetch(url, options).then(function (response) {
      return response.json().catch(function () { return {}; }).then(function (data) {
        if (!response.ok) throw new Error(data.error || "HTTP " + response.status);
        return data;
      });
    });
  }

  // ---- contacts ------------------------------------------------------------------------

  function saveLocal() {
    try {
      localStorage.setItem("playground.contact", JSON.stringify({ contact: state.contact, name: state.name }));
    } catch (e) { /* private mode: nothing to keep */ }
  }

  function loadLocal() {
    try {
      var saved = JSON.parse(localStorage.getItem("playground.contact") || "null");
      if (saved && saved.contact) return saved;
    } catch (e) { /* ignore */ }
    return null;
  }

  function useContact(contact, name) {
    state.contact = contact;
    state.name = name || contact;
    state.lastJson = "";
    state.stick = true;
    $("contact-number").value = contact;
    $("contact-name").value = state.name;
    $("me").textContent = state.name + " (+" + contact + ")";
    messagesEl.replaceChildren();
    saveLocal();
    renderContacts();
    poll();
  }

  function renderContacts() {
    var list = $("contacts");
    list.replaceChildren();
    var seen = new Set();
    var all = [{ contact: state.contact, name: state.name }].concat(state.known);
    all.forEach(function (item) {
      if (!item.contact || seen.has(item.contact)) return;
      seen.add(item.contact);
      var li = el("li", "contact" + (item.contact === state.contact ? " active" : ""));
      li.dataset.contact = item.contact;
      li.appendChild(el("div", "avatar", (item.name || "?").trim().charAt(0).toUpperCase() || "?"));
      var text = el("div", "contact-text");
      text.appendChild(el("div", "contact-name", item.name || item.contact));
      text.appendChild(el("div", "contact-last", item.last ? item.last : "+" + item.contact));
      li.appendChild(text);
      li.addEventListener("click", function () { useContact(item.contact, item.name); });
      list.appendChild(li);
    });
  }

  function loadInfo() {
    return api(urls.info).then(function (info) {
      state.known = info.contacts || [];
      renderContacts();
    }).catch(function () { /* the list is a convenience */ });
  }

  $("contact-form").addEventListener("submit", function (event) {
    event.preventDefault();
    var number = $("contact-number").value.replace(/[\s()+.\-]/g, "");
    if (!/^[1-9]\d{6,19}$/.test(number)) {
      $("contact-error").textContent = "A WhatsApp number in international form, digits only (e.g. 5561987654321).";
      return;
    }
    $("contact-error").textContent = "";
    useContact(number, $("contact-name").value.trim() || number);
  });

  // ---- sending -------------------------------------------------------------------------

  function send(payload) {
    payload.contact = state.contact;
    payload.name = state.name;
    $("send-error").textContent = "";
    return api(urls.messages, payload).then(poll).catch(function (error) {
      $("send-error").textContent = "Not sent: " + error.message;
    });
  }

  var composerText = $("composer-text");
  $("composer").addEventListener("submit", function (event) {
    event.preventDefault();
    var text = composerText.value;
    if (!text.trim()) return;
    composerText.value = "";
    send({ text: text });
  });
  composerText.addEventListener("keydown", function (event) {
    if (event.key === "Enter" && !event.shiftKey) {
      event.preventDefault();
      $("composer").requestSubmit();
    }
  });

  function reply(type, choice, context) {
    var payload = { type: type, id: choice.id, title: choice.title, context: context };
    if (choice.description) payload.description = choice.description;
    return send({ reply: payload });
  }

  // ---- statuses (sandbox) --------------------------------------------------------------

  function reportDelivered(items) {
    if (!sandbox) return;
    var fresh = items.filter(function (item) {
      return item.direction === "out" && item.wamid && item.delivery === "sent" && !state.reported.has(item.wamid);
    });
    if (!fresh.length) return;
    fresh.forEach(function (item) { state.reported.add(item.wamid); });
    api(urls.statuses, { contact: state.contact, status: "delivered" }).then(poll).catch(function () {
      fresh.forEach(function (item) { state.reported.delete(item.wamid); });
    });
  }

  var markRead = $("mark-read");
  if (markRead) {
    markRead.addEventListener("click", function () {
      api(urls.statuses, { contact: state.contact, status: "read" }).then(poll).catch(function (error) {
        $("send-error").textContent = error.message;
      });
    });
  }

  function simulateFailure(wamid) {
    api(urls.statuses, { contact: state.contact, status: "failed", wamid: wamid }).then(poll).catch(function (error) {
      $("send-error").textContent = error.message;
    });
  }

  // ---- rendering -----------------------------------------------------------------------

  var TICKS = { pending: "○", sent: "✓", delivered: "✓✓", read: "✓✓", failed: "!" };
  var TICK_TITLES = {
    pending: "not yet accepted by WhatsApp",
    sent: "sent (accepted by WhatsApp)",
    delivered: "delivered to the phone",
    read: "read",
    failed: "failed",
  };

  function meta(item) {
    var line = el("span", "meta");
    line.appendChild(el("span", "time", clock(item.at)));
    if (item.direction === "out") {
      var ticks = el("span", "ticks " + item.delivery, TICKS[item.delivery] || "");
      ticks.title = TICK_TITLES[item.delivery] || item.delivery;
      ticks.dataset.testid = "ticks";
      line.appendChild(ticks);
    }
    return line;
  }

  function mediaNode(kind, media) {
    var link = media.link;
    if (!isWebUrl(link)) {
      return el("div", "media-missing", kind + (media.id ? " (media id " + media.id + ")" : ""));
    }
    if (kind === "image" || kind === "sticker") {
      var img = el("img", kind === "sticker" ? "sticker" : "image");
      img.src = link;
      img.alt = media.caption || kind;
      img.loading = "lazy";
      img.referrerPolicy = "no-referrer";
      img.addEventListener("load", followBottom);
      return img;
    }
    if (kind === "video" || kind === "audio") {
      var player = el(kind, kind);
      player.controls = true;
      player.preload = "none";
      player.src = link;
      return player;
    }
    var card = el("a", "document");
    card.href = link;
    card.target = "_blank";
    card.rel = "noopener noreferrer";
    card.appendChild(el("span", "doc-icon", "DOC"));
    card.appendChild(el("span", "doc-name", media.filename || link.split("/").pop() || "document"));
    return card;
  }

  function textBlock(className, text) {
    return formatInto(el("div", className), text);
  }

  function renderInteractive(bubble, item, interactive, after) {
    var header = interactive.header;
    if (header) {
      if (header.type === "text") bubble.appendChild(textBlock("i-header", header.text));
      else if (header[header.type]) bubble.appendChild(mediaNode(header.type, header[header.type]));
    }
    if (interactive.body) bubble.appendChild(textBlock("text", interactive.body.text));
    if (interactive.footer) bubble.appendChild(el("div", "i-footer", interactive.footer.text));
    var action = interactive.action || {};
    if (interactive.type === "button") {
      var buttons = el("div", "reply-buttons");
      buttons.dataset.testid = "reply-buttons";
      (action.buttons || []).forEach(function (button) {
        var choice = button.reply || {};
        var b = el("button", "reply-button", choice.title);
        b.type = "button";
        b.dataset.id = choice.id;
        b.addEventListener("click", function () { reply("button_reply", choice, item.wamid); });
        buttons.appendChild(b);
      });
      after.push(buttons);
    } else if (interactive.type === "list") {
      var open = el("button", "list-button");
      open.type = "button";
      open.dataset.testid = "list-button";
      open.appendChild(el("span", "list-icon", "☰"));
      open.appendChild(el("span", "", action.button || "Options"));
      open.addEventListener("click", function () { openSheet(item, action); });
      bubble.appendChild(open);
    } else if (interactive.type === "location_request_message") {
      var share = el("button", "list-button", "📍 Send location");
      share.type = "button";
      share.disabled = true;
      share.title = "the playground cannot share a location yet";
      bubble.appendChild(share);
    }
  }

  function renderOutgoingBody(bubble, item, after) {
    var b = item.body || {};
    var kind = b.type;
    if (kind === "text" && b.text) {
      bubble.appendChild(textBlock("text", b.text.body));
    } else if (kind === "interactive" && b.interactive) {
      renderInteractive(bubble, item, b.interactive, after);
    } else if (["image", "video", "audio", "document", "sticker"].indexOf(kind) >= 0 && b[kind]) {
      bubble.classList.add("has-media");
      bubble.appendChild(mediaNode(kind, b[kind]));
      if (b[kind].caption) bubble.appendChild(textBlock("text caption", b[kind].caption));
    } else if (kind === "location" && b.location) {
      bubble.appendChild(el("div", "text", "📍 " + [b.location.name, b.location.address].filter(Boolean).join(" — ")));
    } else if (kind === "template" && b.template) {
      bubble.appendChild(el("div", "text muted", "[template " + b.template.name + "]"));
    } else if (kind === "reaction" && b.reaction) {
      bubble.appendChild(el("div", "text", b.reaction.emoji || "(reaction removed)"));
    } else {
      bubble.appendChild(el("pre", "raw", JSON.stringify(b, null, 2)));
    }
  }

  function quoteOf(item, byWamid) {
    if (!item.quoted) return null;
    var quoted = byWamid[item.quoted];
    var quote = el("div", "quote");
    quote.appendChild(el("div", "quote-who", "Bot"));
    var text = "";
    if (quoted && quoted.body) {
      var b = quoted.body;
      if (b.interactive && b.interactive.body) text = b.interactive.body.text;
      else if (b.text) text = b.text.body;
      else text = "[" + b.type + "]";
    }
    quote.appendChild(formatInto(el("div", "quote-text"), text));
    return quote;
  }

  var STATE_WORDS = {
    received: "queued",
    processing: "with the bot",
    answered: "answered",
    ignored: "not for the bot",
    dead: "dead letter",
  };

  function renderItem(item, byWamid) {
    var row = el("div", "row " + (item.direction === "in" ? "mine" : "theirs"));
    row.dataset.wamid = item.wamid || "";
    row.dataset.direction = item.direction;
    var bubble = el("div", "bubble");
    var after = [];
    if (item.direction === "in") {
      var quote = quoteOf(item, byWamid);
      if (quote) bubble.appendChild(quote);
      bubble.appendChild(textBlock("text", item.display));
      if (item.description) bubble.appendChild(el("div", "i-footer", item.description));
      var m = meta(item);
      var stateWord = el("span", "in-state " + item.state, STATE_WORDS[item.state] || item.state);
      stateWord.title = item.error || "";
      m.insertBefore(stateWord, m.firstChild);
      bubble.appendChild(m);
    } else {
      bubble.dataset.testid = "bot-message";
      renderOutgoingBody(bubble, item, after);
      bubble.appendChild(meta(item));
      if (sandbox && item.wamid && item.delivery !== "failed" && item.delivery !== "read") {
        var fail = el("button", "simulate-fail", "simulate failure");
        fail.type = "button";
        fail.title = "report this message as failed (code 131026), as WhatsApp would";
        fail.addEventListener("click", function () { simulateFailure(item.wamid); });
        after.push(fail);
      }
    }
    row.appendChild(bubble);
    after.forEach(function (node) { row.appendChild(node); });
    if (item.direction === "out" && item.problems && item.problems.length) {
      var warn = el("div", "warning");
      warn.dataset.testid = "rejection-warning";
      warn.appendChild(el("strong", "", "⚠ WhatsApp would reject this message:"));
      var list = el("ul");
      item.problems.forEach(function (problem) { list.appendChild(el("li", "", problem)); });
      warn.appendChild(list);
      row.appendChild(warn);
    }
    if (item.direction === "out" && (item.meta_error || item.state === "failed")) {
      var error = item.meta_error;
      var words = error
        ? [error.code, error.title, error.details].filter(function (x) { return x != null && x !== ""; }).join(" · ")
        : item.error || "send failed";
      var failed = el("div", "failure", "Not delivered: " + words);
      failed.dataset.testid = "failure";
      row.appendChild(failed);
    }
    if (item.direction === "in" && item.state === "received" && item.attempts && item.error) {
      var retrying = el("div", "failure", "Retrying (attempt " + item.attempts + " failed): " + item.error);
      retrying.dataset.testid = "retrying";
      row.appendChild(retrying);
    }
    if (item.direction === "in" && item.state === "dead") {
      row.appendChild(el("div", "failure", "Not answered (dead letter): " + (item.error || "")));
    }
    return row;
  }

  // Follow new messages while the reader is at the bottom, as WhatsApp does; not when they
  // scrolled up to read something older.
  state.stick = true;
  function atBottom() {
    return messagesEl.scrollHeight - messagesEl.scrollTop - messagesEl.clientHeight < 80;
  }
  function followBottom() {
    if (state.stick) messagesEl.scrollTop = messagesEl.scrollHeight;
  }
  messagesEl.addEventListener("scroll", function () { state.stick = atBottom(); });

  function render(items) {
    var byWamid = {};
    items.forEach(function (item) { if (item.wamid) byWamid[item.wamid] = item; });
    var nodes = items.map(function (item) { return renderItem(item, byWamid); });
    var last = items.filter(function (item) { return item.direction === "in"; }).pop();
    if (last && (last.state === "received" || last.state === "processing")) {
      var typing = el("div", "row theirs typing-row");
      typing.appendChild(el("div", "bubble typing", "typing…"));
      nodes.push(typing);
    }
    if (!items.length) {
      nodes.push(el("div", "empty", "Write something below: it reaches the bot as a WhatsApp message from +" + state.contact + "."));
    }
    messagesEl.replaceChildren.apply(messagesEl, nodes);
    followBottom();
  }

  // ---- the list sheet ------------------------------------------------------------------

  var sheet = $("sheet");
  var sheetSend = sheet.querySelector(".sheet-send");

  function closeSheet() {
    sheet.hidden = true;
    state.sheetChoice = null;
  }

  function openSheet(item, action) {
    $("sheet-title").textContent = action.button || "Options";
    var bodyEl = sheet.querySelector(".sheet-body");
    bodyEl.replaceChildren();
    state.sheetChoice = null;
    sheetSend.disabled = true;
    (action.sections || []).forEach(function (section) {
      if (section.title) bodyEl.appendChild(el("div", "section-title", section.title));
      (section.rows || []).forEach(function (row) {
        var label = el("label", "list-row");
        label.dataset.id = row.id;
        var text = el("span", "row-text");
        text.appendChild(el("span", "row-title", row.title));
        if (row.description) text.appendChild(el("span", "row-description", row.description));
        label.appendChild(text);
        var radio = el("input");
        radio.type = "radio";
        radio.name = "list-choice";
        radio.value = row.id;
        radio.addEventListener("change", function () {
          state.sheetChoice = { row: row, context: item.wamid };
          sheetSend.disabled = false;
        });
        label.appendChild(radio);
        bodyEl.appendChild(label);
      });
    });
    sheet.hidden = false;
  }

  sheet.querySelector(".sheet-close").addEventListener("click", closeSheet);
  sheet.addEventListener("click", function (event) { if (event.target === sheet) closeSheet(); });
  document.addEventListener("keydown", function (event) { if (event.key === "Escape") closeSheet(); });
  sheetSend.addEventListener("click", function () {
    var choice = state.sheetChoice;
    if (!choice) return;
    closeSheet();
    reply("list_reply", choice.row, choice.context);
  });

  // ---- polling -------------------------------------------------------------------------

  var polling = false;
  function poll() {
    if (!state.contact || polling) return;
    polling = true;
    var contact = state.contact;
    api(urls.conversation + "?contact=" + encodeURIComponent(contact))
      .then(function (data) {
        if (contact !== state.contact) return;
        var json = JSON.stringify(data.messages);
        if (json !== state.lastJson) {
          state.lastJson = json;
          render(data.messages);
        }
        reportDelivered(data.messages);
        if ($("send-error").textContent.indexOf("Cannot reach") === 0) $("send-error").textContent = "";
      })
      .catch(function (error) { $("send-error").textContent = "Cannot reach the gateway: " + error.message; })
      .then(function () { polling = false; });
  }

  var start = loadLocal() || DEFAULT_CONTACT;
  useContact(start.contact, start.name);
  loadInfo();
  setInterval(poll, POLL_MS);
  setInterval(loadInfo, 10000);
})();

/* The operator view: recent conversations, each message's path, the queue, dead letters.
 * Polls the overview every 1.5 s and the open conversation with it. */
(function () {
  "use strict";
  var body = document.body;
  var urls = {
    overview: body.dataset.overviewUrl,
    conversation: body.dataset.conversationUrl,
    replay: body.dataset.replayUrl, // ends in /0/replay
  };
  var POLL_MS = 1500;
  var state = { contact: null, overviewJson: "", pathsJson: "" };
  var $ = function (id) { return document.getElementById(id); };

  function el(tag, className, text) {
    var node = document.createElement(tag);
    if (className) node.className = className;
    if (text != null) node.textContent = text;
    return node;
  }

  function when(seconds) {
    if (!seconds) return "";
    return new Date(seconds * 1000).toLocaleString();
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

  function summary(body) {
    if (!body || typeof body !== "object") return "";
    if (typeof body.path === "string" && body.body) {
      var request = body.body;
      return "[SERPRO " + body.path.split("/").pop() + "] " + (request.body || request.textoBody || request.caption || "");
    }
    var kind = body.type || "text";
    var content = body[kind] || {};
    if (kind === "text") return content.body || "";
    if (kind === "interactive") {
      var action = content.action || {};
      var options = (action.buttons || []).map(function (b) { return (b.reply || {}).title; });
      (action.sections || []).forEach(function (s) {
        (s.rows || []).forEach(function (r) { options.push(r.title); });
      });
      return ((content.body || {}).text || "") + "  [" + options.join(" | ") + "]";
    }
    if (content.caption) return "[" + kind + "] " + content.caption;
    return "[" + kind + "]";
  }

  function pathNode(steps) {
    var chain = el("ol", "path");
    steps.forEach(function (step) {
      var li = el("li", "step " + step.state, step.label);
      li.dataset.testid = "step";
      var title = [step.detail, step.at ? when(step.at) : ""].filter(Boolean).join(" · ");
      if (title) li.title = title;
      chain.appendChild(li);
      if (step.detail && (step.state === "failed" || step.state === "retrying")) {
        chain.appendChild(el("li", "step-detail", step.detail));
      }
    });
    return chain;
  }

  function renderOverview(data) {
    $("queue-depth").textContent = data.queue_depth;
    $("processing").textContent = data.processing;
    $("dead-count").textContent = data.dead_letters.length;
    var list = $("conversations");
    list.replaceChildren();
    data.contacts.forEach(function (c) {
      var li = el("li", "contact" + (c.contact_key === state.contact ? " active" : ""));
      li.dataset.contactKey = c.contact_key;
      var text = el("div", "contact-text");
      text.appendChild(el("div", "contact-name", (c.name || c.contact) + "  +" + c.contact));
      text.appendChild(el("div", "contact-last", c.last || ""));
      li.appendChild(text);
      li.appendChild(el("span", "badge " + c.state, c.state));
      li.addEventListener("click", function () { openConversation(c.contact_key, c.name || c.contact); });
      list.appendChild(li);
    });
    var rows = $("dead-letters");
    rows.replaceChildren();
    if (!data.dead_letters.length) {
      var none = el("tr");
      var cell = el("td", "hint", "No dead letters.");
      cell.colSpan = 7;
      none.appendChild(cell);
      rows.appendChild(none);
    }
    data.dead_letters.forEach(function (letter) {
      var tr = el("tr");
      tr.dataset.testid = "dead-letter";
      tr.dataset.id = letter.id;
      [letter.id, letter.contact_key, letter.text || "", letter.error, letter.attempts, when(letter.at)]
        .forEach(function (value) { tr.appendChild(el("td", "", String(value))); });
      var action = el("td");
      var button = el("button", "replay", "Replay");
      button.type = "button";
      button.addEventListener("click", function () { replay(letter.id, button); });
      action.appendChild(button);
      tr.appendChild(action);
      rows.appendChild(tr);
    });
  }

  function replay(id, button) {
    button.disabled = true;
    api(urls.replay.replace(/\/0\/replay$/, "/" + id + "/replay"), {})
      .then(function () { $("replay-note").textContent = "Dead letter " + id + " is back in its queue."; })
      .catch(function (error) { $("replay-note").textContent = error.message; button.disabled = false; })
      .then(refresh);
  }

  function renderPaths(messages) {
    var box = $("paths");
    box.replaceChildren();
    if (!messages.length) box.appendChild(el("p", "hint", "No messages."));
    messages.slice().reverse().forEach(function (m) {
      var card = el("article", "message-card");
      card.dataset.testid = "message-path";
      card.dataset.state = m.state;
      var head = el("div", "card-head");
      head.appendChild(el("span", "card-text", m.display));
      head.appendChild(el("span", "card-when", when(m.at) + " · " + m.type + " · attempts " + m.attempts));
      card.appendChild(head);
      card.appendChild(pathNode(m.path));
      m.replies.forEach(function (r, index) {
        var reply = el("div", "reply");
        reply.appendChild(el("div", "reply-text", "↳ reply " + (index + 1) + ": " + summary(r.body)));
        reply.appendChild(pathNode(r.path));
        if (r.problems && r.problems.length) {
          reply.appendChild(el("div", "warning", "⚠ WhatsApp would reject it: " + r.problems.join("; ")));
        }
        card.appendChild(reply);
      });
      box.appendChild(card);
    });
  }

  function openConversation(key, name) {
    state.contact = key;
    state.pathsJson = "";
    $("conversation-title").textContent = "Conversation with " + name;
    refresh();
  }

  var busy = false;
  function refresh() {
    if (busy) return;
    busy = true;
    var live = $("live");
    api(urls.overview)
      .then(function (data) {
        live.className = "live ok";
        var json = JSON.stringify([data.contacts, data.dead_letters, data.queue_depth, data.processing]);
        if (json !== state.overviewJson) {
          state.overviewJson = json;
          renderOverview(data);
        }
        if (!state.contact && data.contacts.length) {
          openConversation(data.contacts[0].contact_key, data.contacts[0].name || data.contacts[0].contact);
        }
        if (!state.contact) return null;
        return api(urls.conversation + "?contact=" + encodeURIComponent(state.contact)).then(function (c) {
          var pj = JSON.stringify(c.messages);
          if (pj !== state.pathsJson) {
            state.pathsJson = pj;
            renderPaths(c.messages);
          }
        });
      })
      .catch(function () { live.className = "live down"; })
      .then(function () { busy = false; });
  }

  refresh();
  setInterval(refresh, POLL_MS);
})();

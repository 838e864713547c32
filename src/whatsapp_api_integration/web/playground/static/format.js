/* WhatsApp text formatting, rendered as DOM nodes (never innerHTML: bot text is untrusted).
 *   *bold*  _italic_  ~strike~  `inline code`  ```monospace block```
 * A marker opens only after the start, a space or punctuation, and before a non-space; it
 * closes after a non-space and before the end, a space or punctuation, as WhatsApp does. */
(function () {
  "use strict";
  var TAGS = { "*": "strong", "_": "em", "~": "del", "`": "code" };
  var EDGE = "\\s.,;:!?()\\[\\]{}\"'«»“”‘’/\\-";
  var INLINE = new RegExp(
    "(^|[" + EDGE + "])([*_~`])(?=\\S)([^\\n]*?\\S)\\2(?=$|[" + EDGE + "])"
  );

  function inline(parent, text) {
    var match;
    while (text && (match = INLINE.exec(text))) {
      var start = match.index + match[1].length;
      if (start > 0) parent.appendChild(document.createTextNode(text.slice(0, start)));
      var node = document.createElement(TAGS[match[2]]);
      if (match[2] === "`") node.textContent = match[3];
      else inline(node, match[3]);
      parent.appendChild(node);
      text = text.slice(match.index + match[0].length);
    }
    if (text) parent.appendChild(document.createTextNode(text));
  }

  function formatInto(parent, text) {
    var parts = String(text == null ? "" : text).split(/```([\s\S]+?)```/);
    for (var i = 0; i < parts.length; i++) {
      if (i % 2) {
        var block = document.createElement("code");
        block.className = "mono";
        block.textContent = parts[i];
        parent.appendChild(block);
      } else {
        inline(parent, parts[i]);
      }
    }
    return parent;
  }

  window.WhatsAppFormat = { formatInto: formatInto };
})();

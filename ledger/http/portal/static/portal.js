// The portal's one script: light progressive enhancement, nothing needs it to work.
// - a chart marked data-refresh reloads its SVG from its data-src every data-refresh seconds;
// - a "back" link goes back in history when there is one.
(function () {
  "use strict";
  function refresh(figure) {
    var seconds = parseInt(figure.getAttribute("data-refresh"), 10);
    var source = figure.getAttribute("data-src");
    if (!seconds || !source) { return; }
    window.setInterval(function () {
      if (document.hidden) { return; }
      fetch(source, { credentials: "same-origin", headers: { "Accept": "text/html" } })
        .then(function (answer) { return answer.ok ? answer.text() : null; })
        .then(function (html) {
          if (html === null) { return; }
          var holder = figure.querySelector("[data-chart]");
          if (holder) { holder.innerHTML = html; }
        })
        .catch(function () { /* the next tick tries again */ });
    }, seconds * 1000);
  }
  document.addEventListener("DOMContentLoaded", function () {
    Array.prototype.forEach.call(document.querySelectorAll("figure[data-refresh]"), refresh);
    Array.prototype.forEach.call(document.querySelectorAll("a[data-back]"), function (link) {
      link.addEventListener("click", function (event) {
        if (window.history.length > 1) { event.preventDefault(); window.history.back(); }
      });
    });
  });
}());

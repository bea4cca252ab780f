// live.js follows a running run's log on its page: it appends each "log"
// event of the page's stream to the log and reloads the page once the
// run has ended, to show its outcome and metrics.
(function () {
  "use strict";
  var pre = document.getElementById("log");
  var status = document.getElementById("live");
  if (!pre || !pre.dataset.live || !window.EventSource) {
    return;
  }
  var follow = true;
  window.addEventListener("scroll", function () {
    follow = window.innerHeight + window.scrollY >= document.body.scrollHeight - 40;
  });
  var es = new EventSource(pre.dataset.live);
  es.addEventListener("log", function (e) {
    pre.appendChild(document.createTextNode(e.data));
    if (follow) {
      window.scrollTo(0, document.body.scrollHeight);
    }
  });
  es.addEventListener("end", function (e) {
    es.close();
    if (status) {
      status.textContent = "finished: " + e.data;
    }
    window.location.reload();
  });
})();

/*
 * app.js: show which lesson server is serving this page, and how fast.
 *
 * 1. Sends `HEAD <this page>` and prints the response's Server and
 *    Connection headers (plus status, Content-Type, Content-Length) into
 *    the element with id="served-by".
 * 2. Reads the Navigation Timing entry of this page load and prints the
 *    connect time and the time to first byte into id="timing".
 *
 * No libraries. Every step checks that what it needs exists, so an old
 * browser, a missing header, a page opened from disk or a server that
 * drops the HEAD request only produce a message, never an uncaught error.
 */
(function () {
  "use strict";

  // Put rows of [label, value, explanation-if-missing] into a <dl> (or any element).
  function render(el, rows) {
    while (el.firstChild) {
      el.removeChild(el.firstChild);
    }
    var asList = el.tagName === "DL";
    rows.forEach(function (row) {
      var label = row[0];
      var value = row[1];
      var missing = row[2];
      var term = document.createElement(asList ? "dt" : "span");
      var desc = document.createElement(asList ? "dd" : "span");
      term.textContent = label + (asList ? "" : ": ");
      if (value === null || value === undefined || value === "") {
        desc.className = "missing";
        desc.textContent = missing || "not available";
      } else {
        desc.textContent = String(value);
        if (label === "Note") {
          desc.className = "missing"; // prose, not a measured value
        }
      }
      el.appendChild(term);
      el.appendChild(desc);
      if (!asList) {
        el.appendChild(document.createElement("br"));
      }
    });
  }

  function ms(value) {
    return (Math.round(value * 10) / 10).toFixed(1) + " ms";
  }

  function showServedBy() {
    var el = document.getElementById("served-by");
    if (!el) {
      return;
    }
    if (location.protocol === "file:") {
      render(el, [["Server", null,
        "none: this page was opened as a file. Start a lesson (python3 lessons/06_static_single.py) " +
        "and open http://127.0.0.1:7890/"]]);
      return;
    }
    if (typeof window.fetch !== "function") {
      render(el, [["Server", null, "this browser has no fetch(); try: curl -I " + location.href]]);
      return;
    }
    render(el, [["Server", null, "sending HEAD " + location.pathname + " …"]]);
    var started = window.performance && performance.now ? performance.now() : Date.now();

    window.fetch(location.pathname, { method: "HEAD", cache: "no-store" })
      .then(function (response) {
        var ended = window.performance && performance.now ? performance.now() : Date.now();
        var headers = response.headers;
        function get(name) {
          try {
            return headers ? headers.get(name) : null;
          } catch (e) {
            return null;
          }
        }
        render(el, [
          ["Status", response.status + (response.statusText ? " " + response.statusText : "")],
          ["Server", get("Server"), "no Server header in the response"],
          ["Connection", get("Connection"),
            "no Connection header (or the browser hid it); HTTP/1.1 then means keep-alive"],
          ["Content-Type", get("Content-Type"), "no Content-Type header: the browser has to guess"],
          ["Content-Length", get("Content-Length"),
            "no Content-Length header: the end of the body is marked by closing the connection"],
          ["HEAD round trip", ms(ended - started)]
        ]);
      })
      .catch(function (error) {
        render(el, [["Server", null,
          "the HEAD request failed (" + (error && error.message ? error.message : "network error") +
          "). Did the server close the connection without answering? Try: curl -I " + location.href]]);
      });
  }

  function showTiming() {
    var el = document.getElementById("timing");
    if (!el) {
      return;
    }
    var perf = window.performance;
    var entries = perf && typeof perf.getEntriesByType === "function"
      ? perf.getEntriesByType("navigation") : [];
    var nav = entries && entries.length ? entries[0] : null;
    if (!nav) {
      render(el, [["Timing", null, "this browser does not expose Navigation Timing"]]);
      return;
    }
    var connect = nav.connectEnd - nav.connectStart;
    var rows = [
      ["Connect (TCP handshake)", connect >= 0 ? ms(connect) : null, "not measured"],
      ["Start → request sent", nav.requestStart > 0 ? ms(nav.requestStart - nav.fetchStart) : null,
        "not measured"],
      ["Time to first byte", nav.responseStart > 0 ? ms(nav.responseStart - nav.startTime) : null,
        "not measured"],
      ["Request sent → first byte",
        nav.responseStart > 0 && nav.requestStart > 0 ? ms(nav.responseStart - nav.requestStart) : null,
        "not measured"],
      ["Whole page loaded", nav.loadEventEnd > 0 ? ms(nav.loadEventEnd - nav.startTime) : null,
        "still loading"],
      ["Protocol", nav.nextHopProtocol || null, "not reported"]
    ];
    if (connect === 0) {
      rows.push(["Note", "0 ms connect: the browser reused an open connection (keep-alive) or opened " +
        "it in advance, so no handshake was timed. On 127.0.0.1 a handshake takes well under 1 ms anyway."]);
    }
    render(el, rows);
  }

  function start() {
    // Wait until the page and its images are loaded, so that the HEAD request
    // does not queue behind them on a server that serves one client at a time;
    // setTimeout lets loadEventEnd be filled in first.
    window.setTimeout(function () {
      showTiming();
      showServedBy();
    }, 0);
  }

  if (document.readyState === "complete") {
    start();
  } else {
    window.addEventListener("load", start);
  }

  var again = document.getElementById("ask-again");
  if (again) {
    again.addEventListener("click", showServedBy);
  }
}());

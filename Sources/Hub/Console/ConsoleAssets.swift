// SPDX-License-Identifier: Apache-2.0

/// The console's only assets, served by the hub itself (no CDN, no build step): one
/// stylesheet and one small script for progressive enhancement. Every page works without
/// the script; the Content-Security-Policy allows scripts and styles from the hub only.
enum ConsoleAssets {
    static let css = """
        :root { --accent: #1f5f99; --ink: #1b1f23; --muted: #525a63; --line: #d0d7de; --bg: #ffffff;
          --critical: #a4161a; --warning: #7a4d00; --ok: #1a6633; --soft: #f3f6f9; }
        * { box-sizing: border-box; }
        body { margin: 0; font: 16px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: var(--ink);
          background: var(--bg); }
        a { color: var(--accent); }
        a:focus, button:focus, input:focus, select:focus, textarea:focus { outline: 3px solid #f2a900;
          outline-offset: 1px; }
        header.top { display: flex; flex-wrap: wrap; gap: .5rem 1.5rem; align-items: center; padding: .6rem 1rem;
          background: var(--accent); color: #fff; }
        header.top a { color: #fff; }
        header.top .brand { font-weight: 700; text-decoration: none; }
        nav ul { display: flex; flex-wrap: wrap; gap: .25rem 1rem; list-style: none; margin: 0; padding: 0; }
        header.top form { margin-left: auto; }
        main { max-width: 72rem; margin: 0 auto; padding: 1rem; }
        h1 { font-size: 1.5rem; margin: .5rem 0 1rem; }
        h2 { font-size: 1.2rem; margin: 1.5rem 0 .5rem; }
        table { border-collapse: collapse; width: 100%; margin: .5rem 0 1rem; }
        th, td { text-align: left; padding: .4rem .5rem; border-bottom: 1px solid var(--line); vertical-align: top; }
        th { background: var(--soft); }
        td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
        .table-wrap { overflow-x: auto; }
        .cards { display: grid; grid-template-columns: repeat(auto-fill, minmax(14rem, 1fr)); gap: 1rem; }
        .card { border: 1px solid var(--line); border-radius: 6px; padding: .75rem 1rem; }
        .card .figure { font-size: 1.6rem; font-weight: 700; }
        .status-critical { color: var(--critical); font-weight: 600; }
        .status-warning { color: var(--warning); font-weight: 600; }
        .status-ok { color: var(--ok); font-weight: 600; }
        .notice { border-left: 4px solid var(--accent); background: var(--soft); padding: .5rem 1rem; margin: 1rem 0; }
        .error { border-left: 4px solid var(--critical); background: #fdeeee; padding: .5rem 1rem; margin: 1rem 0; }
        form.stack label { display: block; font-weight: 600; margin: .75rem 0 .25rem; }
        input[type=text], input[type=password], input[type=number], input[type=search], select, textarea {
          font: inherit; padding: .4rem .5rem; border: 1px solid #6e7781; border-radius: 4px; width: 100%;
          max-width: 32rem; }
        button { font: inherit; padding: .4rem .9rem; border-radius: 4px; border: 1px solid var(--accent);
          background: var(--accent); color: #fff; cursor: pointer; }
        button.secondary { background: #fff; color: var(--accent); }
        button.danger { background: var(--critical); border-color: var(--critical); }
        .inline { display: inline; }
        .muted { color: var(--muted); }
        ul.compact { margin: .25rem 0 0; padding-left: 1.25rem; }
        .visually-hidden { position: absolute; width: 1px; height: 1px; overflow: hidden; clip: rect(0 0 0 0); }
        @media (max-width: 40rem) { th, td { padding: .3rem; font-size: .95rem; } main { padding: .5rem; } }
        @media print {
          header.top, nav, form, button { display: none !important; }
          @page { margin: 2cm 1.5cm; @top-center { content: string(doctitle); }
            @bottom-right { content: "Page " counter(page) " of " counter(pages); } }
          h1 { string-set: doctitle content(); }
          body { font-size: 11pt; }
          a { color: inherit; text-decoration: none; }
        }
        """

    /// Select-all checkboxes and confirmation before destructive actions.
    static let js = """
        "use strict";
        document.addEventListener("DOMContentLoaded", function () {
          document.querySelectorAll("input[data-select-all]").forEach(function (box) {
            box.addEventListener("change", function () {
              document.querySelectorAll("input[name='" + box.dataset.selectAll + "']").forEach(function (c) {
                c.checked = box.checked;
              });
            });
          });
          document.querySelectorAll("button[data-confirm]").forEach(function (button) {
            button.addEventListener("click", function (event) {
              if (!window.confirm(button.dataset.confirm)) { event.preventDefault(); }
            });
          });
          document.querySelectorAll("form[data-confirm]").forEach(function (form) {
            form.addEventListener("submit", function (event) {
              if (!window.confirm(form.dataset.confirm)) { event.preventDefault(); }
            });
          });
        });
        """
}

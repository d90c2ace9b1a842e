"""The page's only stylesheet, inline, and its hash for the Content-Security-Policy.

No external assets (fonts, CDNs, images): the page must work on closed networks and
leak nothing about who looks at which app. The CSP allows exactly this stylesheet by
its SHA-256, no scripts at all, so even markup that slipped through escaping could
neither run code nor load anything.

Colours meet WCAG AA contrast (body text 16:1, badges at least 7:1 on their
backgrounds); status is always spelled out in text and marked with a symbol, colour
only repeats it. Below 40em tables become one card per row with their column
names, so the page reads at 320 CSS pixels without sideways scrolling.
"""

from __future__ import annotations

import base64
import hashlib

__all__ = ["CSS", "CSS_HASH"]

CSS = """
:root { color-scheme: light; }
* { box-sizing: border-box; }
body { margin: 0; font: 1rem/1.5 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif;
  color: #1b1b1b; background: #ffffff; }
a { color: #0b4cb3; }
a:hover { color: #06306f; }
:focus-visible { outline: 3px solid #b35900; outline-offset: 2px; }
.skip { position: absolute; left: -999px; top: 0; padding: .5rem 1rem; background: #ffffff;
  color: #0b4cb3; z-index: 10; }
.skip:focus { left: .5rem; top: .5rem; }
header.site { background: #10233f; color: #ffffff; padding: .75rem 1rem; }
header.site a { color: #ffffff; }
header.site .brand { font-weight: 700; font-size: 1.125rem; text-decoration: none; }
header.site nav ul { list-style: none; margin: .25rem 0 0; padding: 0; display: flex;
  flex-wrap: wrap; gap: .25rem 1.25rem; }
header.site nav a[aria-current="page"] { font-weight: 700; text-decoration-thickness: 3px; }
main { max-width: 72rem; margin: 0 auto; padding: 1rem; overflow-wrap: break-word; }
main:focus { outline: none; }
h1, h2, h3, h4, .verdict, ul.checks li, p { overflow-wrap: anywhere; }
h1 { font-size: 1.6rem; margin: .5rem 0 1rem; line-height: 1.25; }
h2 { font-size: 1.3rem; margin: 2rem 0 .75rem; border-bottom: 2px solid #d0d7e2;
  padding-bottom: .25rem; }
h3 { font-size: 1.1rem; margin: 1.5rem 0 .5rem; }
h4 { font-size: 1rem; margin: 1.25rem 0 .5rem; }
form.search { display: flex; flex-wrap: wrap; gap: .75rem; align-items: flex-end;
  padding: 1rem; background: #f1f4f9; border: 1px solid #c5cfdd; border-radius: .375rem; }
form.search .field { display: flex; flex-direction: column; gap: .25rem; min-width: 0; }
form.search .grow { flex: 1 1 16rem; }
label { font-weight: 600; }
input, select, button { font: inherit; padding: .5rem .625rem; border: 1px solid #5b6b82;
  border-radius: .25rem; background: #ffffff; color: #1b1b1b; max-width: 100%; }
input[aria-invalid="true"] { border: 2px solid #a4161a; }
button { background: #0b4cb3; color: #ffffff; border-color: #0b4cb3; font-weight: 600;
  cursor: pointer; }
button:hover { background: #06306f; }
.hint { color: #4a5568; font-size: .875rem; margin: 0; }
.error { color: #a4161a; font-weight: 600; }
code, pre, .hash { font-family: ui-monospace, "SFMono-Regular", Menlo, Consolas, monospace;
  font-size: .875em; overflow-wrap: anywhere; word-break: break-all; }
pre { white-space: pre-wrap; background: #f6f8fa; border: 1px solid #d0d7e2; padding: .75rem;
  border-radius: .25rem; max-height: 24rem; overflow: auto; }
.verdict { padding: .75rem 1rem; border-radius: .375rem; border: 2px solid; margin: 1rem 0; }
.verdict p { margin: .25rem 0 0; }
.verdict.ok { background: #e8f5ec; border-color: #1e6b34; color: #0f3d1d; }
.verdict.bad { background: #fdecec; border-color: #a4161a; color: #5c0b0e; }
.verdict.warn { background: #fff4e0; border-color: #8a5200; color: #4a2c00; }
.badge { display: inline-block; padding: 0 .5rem; border-radius: 1rem; font-weight: 700;
  font-size: .875rem; border: 1px solid; white-space: nowrap; }
.badge.ok { background: #e8f5ec; color: #0f3d1d; border-color: #1e6b34; }
.badge.bad { background: #fdecec; color: #5c0b0e; border-color: #a4161a; }
.badge.warn { background: #fff4e0; color: #4a2c00; border-color: #8a5200; }
.badge.info { background: #eef2f8; color: #1b2a41; border-color: #5b6b82; }
ul.checks { list-style: none; padding: 0; margin: 0; }
ul.checks li { margin: .5rem 0; padding-left: 0; }
table { border-collapse: collapse; width: 100%; margin: .5rem 0 1rem; }
caption { text-align: left; font-weight: 600; padding: .25rem 0; }
th, td { text-align: left; vertical-align: top; padding: .4rem .5rem;
  border-bottom: 1px solid #d0d7e2; overflow-wrap: break-word; }
thead th { background: #eef2f8; border-bottom: 2px solid #5b6b82; }
dl.facts { display: grid; grid-template-columns: max-content 1fr; gap: .25rem 1rem; margin: 0; }
dl.facts dt { font-weight: 600; }
dl.facts dd { margin: 0; overflow-wrap: anywhere; min-width: 0; }
details { margin: .25rem 0; }
summary { cursor: pointer; color: #0b4cb3; }
.muted { color: #4a5568; }
footer.site { max-width: 72rem; margin: 2rem auto 0; padding: 1rem; color: #4a5568;
  border-top: 1px solid #d0d7e2; font-size: .875rem; }
@media (max-width: 40em) {
  table.stack thead { position: absolute; width: 1px; height: 1px; overflow: hidden;
    clip: rect(0 0 0 0); white-space: nowrap; }
  table.stack, table.stack caption, table.stack tbody, table.stack tr, table.stack td,
  table.stack th { display: block; width: 100%; }
  table.stack tr { border: 1px solid #c5cfdd; border-radius: .375rem; margin: 0 0 .75rem;
    padding: .25rem .5rem; }
  table.stack td, table.stack th { border: 0; padding: .25rem 0; }
  table.stack td::before, table.stack th[data-label]::before { content: attr(data-label) ": ";
    font-weight: 700; }
  .badge { white-space: normal; }
  dl.facts { grid-template-columns: 1fr; }
  dl.facts dd { margin-bottom: .25rem; }
}
""".strip()

CSS_HASH = "sha256-" + base64.b64encode(hashlib.sha256(CSS.encode("utf-8")).digest()).decode()
"""The CSP source expression that allows exactly :data:`CSS`."""

// Message formatting. Incoming HTML (formatted_body) is untrusted: it goes through DOMPurify
// with a short allow-list (no images, no styles, no event handlers, links to safe schemes only).
// Outgoing Markdown is rendered with marked and then sanitized the same way.
import DOMPurify from "dompurify";
import { marked } from "marked";

const ALLOWED_TAGS = [
  "a", "b", "strong", "i", "em", "u", "s", "del", "strike", "code", "pre", "blockquote",
  "p", "br", "ul", "ol", "li", "h1", "h2", "h3", "h4", "h5", "h6", "hr", "span", "sup", "sub",
  "table", "thead", "tbody", "tr", "th", "td",
];
const ALLOWED_ATTR = ["href", "title"];
const SAFE_URL = /^(?:https?:|mailto:|matrix:)/i;

const MENTION_HREF = /^https:\/\/matrix\.to\/#\/(@[^/?]+|%40[^/?]+)$/;

let hooked = false;

function purifier(): typeof DOMPurify | null {
  if (typeof window === "undefined" || !DOMPurify.isSupported) return null;
  if (!hooked) {
    hooked = true;
    DOMPurify.addHook("afterSanitizeAttributes", (node) => {
      if (node.tagName === "A") {
        const href = node.getAttribute("href") ?? "";
        if (!SAFE_URL.test(href.trim())) node.removeAttribute("href");
        node.setAttribute("target", "_blank");
        node.setAttribute("rel", "noopener noreferrer nofollow");
        // A link to a user on matrix.to is a mention: shown as a pill (set after sanitizing,
        // so a sender cannot style anything else this way).
        const user = MENTION_HREF.exec(href.trim());
        let id: string | null = null;
        try {
          id = user ? decodeURIComponent(user[1]) : null;
        } catch {
          id = null;
        }
        if (id) {
          node.setAttribute("class", "mention-pill");
          node.setAttribute("data-mention", id);
        }
      }
    });
  }
  return DOMPurify;
}

/** Sanitized HTML for a formatted_body, or null when it cannot be made safe here. */
export function sanitizeHtml(html: string): string | null {
  const p = purifier();
  if (!p) return null;
  return p.sanitize(html, {
    ALLOWED_TAGS,
    ALLOWED_ATTR: [...ALLOWED_ATTR, "target", "rel"],
    ALLOW_DATA_ATTR: false,
    ALLOW_ARIA_ATTR: false,
    KEEP_CONTENT: true,
  });
}

/** The formatted_body for what a person typed, or null when plain text says it all. */
export function markdownToHtml(text: string): string | null {
  const html = marked.parse(text, { async: false, gfm: true, breaks: true }) as string;
  const trimmed = html.trim();
  const plain = trimmed.replace(/^<p>([\s\S]*)<\/p>$/, "$1");
  // Only entities (quotes, ampersands) and no tags: the plain body says it all.
  if (!plain.includes("<")) return null;
  return sanitizeHtml(trimmed);
}

const URL_RE = /\bhttps?:\/\/[^\s<>"']+[^\s<>"'.,;:!?)\]]/g;

/** Split plain text into text and link parts; rendered as React nodes, never as HTML. */
export function linkify(text: string): ({ text: string } | { href: string })[] {
  const out: ({ text: string } | { href: string })[] = [];
  let last = 0;
  for (const m of text.matchAll(URL_RE)) {
    const i = m.index ?? 0;
    if (i > last) out.push({ text: text.slice(last, i) });
    out.push({ href: m[0] });
    last = i + m[0].length;
  }
  if (last < text.length) out.push({ text: text.slice(last) });
  return out;
}

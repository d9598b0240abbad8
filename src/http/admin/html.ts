/**
 * HTML building for the admin pages: a tagged template that escapes every interpolated value
 * unless it is already `Html`, and the page layout with navigation. Pages are rendered on the
 * server and work without JavaScript; the scripts in `/admin/assets/` only add copy buttons
 * and live progress.
 */

/** Markup that is already safe to insert. */
export class Html {
  constructor(readonly value: string) {}
  toString(): string {
    return this.value;
  }
}

type Value = Html | string | number | boolean | null | undefined | Value[];

export function escapeHtml(text: string): string {
  return text
    .replaceAll('&', '&amp;')
    .replaceAll('<', '&lt;')
    .replaceAll('>', '&gt;')
    .replaceAll('"', '&quot;')
    .replaceAll("'", '&#39;');
}

function render(value: Value): string {
  if (value === null || value === undefined || value === false) return '';
  if (value instanceof Html) return value.value;
  if (Array.isArray(value)) return value.map(render).join('');
  return escapeHtml(String(value));
}

/** `html\`<p>${text}</p>\``: interpolations are escaped, `Html` values and arrays of them kept. */
export function html(strings: TemplateStringsArray, ...values: Value[]): Html {
  let out = strings[0] ?? '';
  values.forEach((value, index) => {
    out += render(value) + (strings[index + 1] ?? '');
  });
  return new Html(out);
}

export interface PageUser {
  username: string;
  role: 'admin' | 'member';
}

export interface PageOptions {
  title: string;
  user?: PageUser;
  csrf?: string;
  /** The navigation entry to mark as current. */
  section?: string;
  /** A message shown at the top, such as "Domain added". */
  notice?: string;
}

const SECTIONS: { id: string; href: string; label: string; adminOnly?: boolean }[] = [
  { id: 'domains', href: '/admin/domains', label: 'Domains' },
  { id: 'aliases', href: '/admin/aliases', label: 'Aliases' },
  { id: 'lists', href: '/admin/lists', label: 'Lists' },
  { id: 'campaigns', href: '/admin/campaigns', label: 'Campaigns' },
  { id: 'queue', href: '/admin/queue', label: 'Queue', adminOnly: true },
  { id: 'events', href: '/admin/events', label: 'Event log', adminOnly: true },
  { id: 'nodes', href: '/admin/nodes', label: 'Nodes', adminOnly: true },
  { id: 'organisations', href: '/admin/organisations', label: 'Organisations', adminOnly: true },
  { id: 'users', href: '/admin/users', label: 'Users', adminOnly: true },
];

export function page(options: PageOptions, body: Html): string {
  const nav = options.user
    ? html`<nav aria-label="Sections">
        <ul>
          ${SECTIONS.filter((section) => !section.adminOnly || options.user?.role === 'admin').map(
            (section) =>
              html`<li>
                <a
                  href="${section.href}"
                  ${section.id === options.section ? new Html(' aria-current="page"') : ''}
                  >${section.label}</a
                >
              </li>`,
          )}
        </ul>
        <form novalidate method="post" action="/admin/logout" class="logout">
          ${csrfField(options.csrf)}
          <span>${options.user.username} (${options.user.role})</span>
          <button type="submit">Sign out</button>
        </form>
      </nav>`
    : '';
  return `<!doctype html>${
    html`<html lang="en">
      <head>
        <meta charset="utf-8" />
        <meta name="viewport" content="width=device-width, initial-scale=1" />
        <title>${options.title} · Herald</title>
        <link rel="stylesheet" href="/admin/assets/admin.css" />
        <script src="/admin/assets/admin.js" defer></script>
      </head>
      <body>
        <a class="skip" href="#main">Skip to content</a>
        <header><a class="brand" href="/admin">Herald</a>${nav}</header>
        <main id="main" tabindex="-1">
          ${options.notice ? html`<p class="notice" role="status">${options.notice}</p>` : ''}
          <h1>${options.title}</h1>
          ${body}
        </main>
      </body>
    </html>`.value
  }`;
}

export function csrfField(token: string | undefined): Html {
  return token ? html`<input type="hidden" name="_csrf" value="${token}" />` : html``;
}

/** A form's error summary: what to fix, linked to each field (WCAG 3.3.1 and 3.3.3). */
export function errorSummary(errors: { field?: string; message: string }[]): Html {
  if (errors.length === 0) return html``;
  return html`<div class="errors" role="alert" tabindex="-1" id="error-summary">
    <h2>Please fix ${errors.length === 1 ? 'this problem' : `these ${errors.length} problems`}</h2>
    <ul>
      ${errors.map((error) =>
        error.field
          ? html`<li><a href="#${error.field}">${error.message}</a></li>`
          : html`<li>${error.message}</li>`,
      )}
    </ul>
  </div>`;
}

/** A labelled input with its error message tied to it by `aria-describedby`. */
export function field(options: {
  name: string;
  label: string;
  value?: string;
  type?: string;
  error?: string;
  hint?: string;
  required?: boolean;
  autocomplete?: string;
}): Html {
  const described = [
    options.hint ? `${options.name}-hint` : '',
    options.error ? `${options.name}-error` : '',
  ]
    .filter(Boolean)
    .join(' ');
  const attributes = new Html(
    [
      options.required ? ' required' : '',
      options.autocomplete ? ` autocomplete="${escapeHtml(options.autocomplete)}"` : '',
      described ? ` aria-describedby="${described}"` : '',
      options.error ? ' aria-invalid="true"' : '',
    ].join(''),
  );
  const input =
    options.type === 'textarea'
      ? html`<textarea id="${options.name}" name="${options.name}" rows="8" ${attributes}>
${options.value ?? ''}</textarea>`
      : html`<input
          id="${options.name}"
          name="${options.name}"
          type="${options.type ?? 'text'}"
          value="${options.value ?? ''}"
          ${attributes}
        />`;
  return html`<div class="field${options.error ? ' invalid' : ''}">
    <label for="${options.name}">${options.label}</label>
    ${options.hint ? html`<p class="hint" id="${options.name}-hint">${options.hint}</p>` : ''}
    ${options.error ? html`<p class="error" id="${options.name}-error">${options.error}</p>` : ''}
    ${input}
  </div>`;
}

export function formatTime(date: Date | null | undefined): string {
  if (!date) return '';
  return date.toISOString().replace('T', ' ').slice(0, 19);
}

// Progressive enhancement only: every page works without JavaScript.
import { initAll } from './govuk-frontend.min.js'

initAll()

// ---- Search and the card (issue #20, helper A) ---------------------------------------------
// Results first: focus moves to the results heading so a screen reader starts there and the
// next Tab reaches the first result. "Print this card" prints (no inline script: the CSP allows
// none), and the printed card's time is the time it is printed.
const focusTarget = document.querySelector('[data-app-focus]')
if (focusTarget) focusTarget.focus()
for (const button of document.querySelectorAll('[data-app-print]')) {
  button.hidden = false
  button.addEventListener('click', () => window.print())
}
window.addEventListener('beforeprint', () => {
  const when = new Date().toLocaleString('en-GB', {
    day: 'numeric', month: 'long', year: 'numeric', hour: '2-digit', minute: '2-digit'
  })
  for (const stamp of document.querySelectorAll('[data-app-printed-at]')) stamp.textContent = when
})

// --- The session time-out warning (issue #20, helper B; childindex/web/signed_out.py) ------------
// The GOV.UK timeout pattern: a modal shortly before the page session times out, with "Stay signed
// in" (renews it) and "Sign out". The server decides; this only asks it (/session/left, which does
// not count as use) so another tab's activity is respected. When the time is up, a form the person
// has typed into is sent, so the server keeps it sealed and gives it back after signing in again;
// otherwise the page is reloaded and the server says why the person was signed out.
const timeout = document.getElementById('app-timeout')
if (timeout && typeof timeout.showModal === 'function') {
  const idle = Number(timeout.dataset.idleSeconds)
  const warn = Math.min(Number(timeout.dataset.warnSeconds), idle)
  const left = timeout.querySelector('.app-timeout__left')
  const csrf = timeout.querySelector('input[name="csrf_token"]').value
  let timer = null
  let deadline = Date.now() + idle * 1000
  // A form someone has typed into: any field whose value differs from what the page came with (read
  // when the session ends, so typing before this script ran counts too).
  const changed = (el) => {
    if (['hidden', 'submit', 'button'].includes(el.type)) return false
    if (el.type === 'checkbox' || el.type === 'radio') return el.checked !== el.defaultChecked
    if (el.tagName === 'SELECT') return Array.from(el.options).some((o) => o.selected !== o.defaultSelected)
    return 'defaultValue' in el && el.value !== el.defaultValue
  }
  const typedInto = () =>
    Array.from(document.querySelectorAll('main form[method="post"]')).find((f) => Array.from(f.elements).some(changed))
  const say = (seconds) => {
    const minutes = Math.ceil(seconds / 60)
    left.textContent = seconds >= 60 ? `${minutes} minute${minutes === 1 ? '' : 's'}` : `${Math.max(seconds, 0)} seconds`
  }
  const ask = async () => {
    try {
      const answer = await fetch('/session/left', { credentials: 'same-origin', cache: 'no-store' })
      return (await answer.json()).seconds
    } catch (e) {
      return null
    }
  }
  const end = () => {
    const form = typedInto()
    if (form) HTMLFormElement.prototype.submit.call(form) // held by the server (never in a URL)
    else window.location.reload()
  }
  const tick = async () => {
    const remaining = Math.round((deadline - Date.now()) / 1000)
    if (remaining > warn) return schedule((remaining - warn) * 1000)
    const server = await ask()
    if (server === null) return remaining <= 0 ? window.location.reload() : schedule(5000)
    if (server > warn) { // used in another tab: start again from there
      deadline = Date.now() + server * 1000
      if (timeout.open) timeout.close()
      return schedule((server - warn) * 1000)
    }
    if (server <= 0) return end() // only when the server says it has ended: a form is then held, not sent
    deadline = Date.now() + server * 1000
    say(server)
    if (!timeout.open) timeout.showModal()
    schedule(Math.min(15000, server * 1000 + 500))
  }
  const schedule = (ms) => { clearTimeout(timer); timer = setTimeout(tick, ms) }
  const stay = timeout.querySelector('[data-app-timeout-stay]')
  stay.addEventListener('click', async () => {
    const body = new URLSearchParams({ csrf_token: csrf })
    const answer = await fetch('/session/keep', { method: 'POST', body, credentials: 'same-origin' })
    if (!answer.ok) return end()
    deadline = Date.now() + (await answer.json()).seconds * 1000
    timeout.close()
    schedule((deadline - Date.now()) - warn * 1000)
  })
  timeout.addEventListener('cancel', (event) => { event.preventDefault(); stay.click() }) // Escape: stay
  schedule((idle - warn) * 1000)
}

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

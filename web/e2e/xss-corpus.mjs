// Hostile strings for message bodies, formatted bodies, display names and room names. Each
// would set window.__xss or open a dialog if the client ever let it run.
export const XSS = [
  `<script>window.__xss=1;alert(1)</script>`,
  `<img src=x onerror="window.__xss=2;alert(2)">`,
  `<svg onload="window.__xss=3;alert(3)"></svg>`,
  `<a href="javascript:window.__xss=4;alert(4)">click me</a>`,
  `<iframe src="javascript:parent.__xss=5;alert(5)"></iframe>`,
  `<body onload="window.__xss=6">`,
  `"><img src=x onerror=alert(7)>`,
  `<math><mtext><table><mglyph><style><img src=x onerror="window.__xss=8;alert(8)">`,
  `<details open ontoggle="window.__xss=9;alert(9)">`,
  `<object data="javascript:alert(10)"></object>`,
  `<a href="  JaVaScRiPt:alert(11)">spaced scheme</a>`,
  `<form><button formaction="javascript:alert(12)">x</button></form>`,
  `<div style="background:url(javascript:alert(13))">styled</div>`,
  `[markdown link](javascript:alert(14))`,
  `<noscript><p title="</noscript><img src=x onerror=alert(15)>">`,
  `<input autofocus onfocus="window.__xss=16;alert(16)">`,
];

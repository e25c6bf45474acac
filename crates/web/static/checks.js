// The message view's check tabs: HTML check and link check. Filled in by
// the page's check panels; app.js knows nothing of them but the events below.
"use strict";

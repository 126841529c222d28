// plotly.js with the trace types neighborscope's dashboard draws (scatter is always in core); keep in step with
// BUNDLE_TRACES in dashboard/plotly_view.py
'use strict';

var Plotly = require('plotly.js/lib/core');

Plotly.register([
    require('plotly.js/lib/bar'),
    require('plotly.js/lib/heatmap'),
    require('plotly.js/lib/pie'),
    require('plotly.js/lib/calendars'),
]);

module.exports = Plotly;

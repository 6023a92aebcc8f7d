"""The web console's static files (index.html, console.css, console.js), served by
service.routes.console. No build step: plain HTML, CSS and JavaScript, the chart drawn as SVG."""

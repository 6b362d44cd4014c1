// Swagger UI for /openapi.json, from the app's own copy (no CDN: works offline and under the CSP).
window.ui = SwaggerUIBundle({url: "/openapi.json", dom_id: "#swagger-ui", deepLinking: true,
                             presets: [SwaggerUIBundle.presets.apis], layout: "BaseLayout"});

"""HTTP route handlers, one module per resource; ``mobile_api.routes`` lists them."""

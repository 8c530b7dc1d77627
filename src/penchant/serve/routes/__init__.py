"""The HTTP API's routes, one router per concern; :func:`penchant.serve.app.create_app` mounts them."""

from penchant.serve.routes import (
    admin,
    browse,
    catalog,
    conversations,
    feedback,
    health,
    models,
    recommendations,
    stats,
)

ROUTERS = [health.router, browse.router, catalog.router, feedback.router, recommendations.router, admin.router,
           conversations.router, models.router, stats.router]

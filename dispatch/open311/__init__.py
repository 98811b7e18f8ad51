"""Open311 GeoReport v2 in the domain: services, client keys, requests and their live view.

``models`` holds the records, ``validation`` the rules a service definition
and a submitted request must meet (pure), ``status`` the GeoReport view of a
request computed from its dispatch job (pure), and ``service`` the
application service the edge calls. The wire formats (JSON, XML, form
bodies) belong to ``mobile_api.open311``.
"""

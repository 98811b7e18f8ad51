"""Open311 GeoReport v2 at the edge: ``/open311/v2/…`` in JSON and XML.

``formats`` writes a payload as the specification's JSON or XML (and its
error bodies), ``forms`` reads a ``POST requests`` form, ``geocoding`` turns
an address into coordinates, ``endpoints`` holds the GeoReport handlers and
``config`` the organisation's ``/v1/services`` and ``/v1/open311/keys``.
"""

"""Models: loading (hub, folder, bundled), shapes without weights, devices."""

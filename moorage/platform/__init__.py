"""The PaaS half of Moorage: controller API, builder, runtime, router and the OSB client."""

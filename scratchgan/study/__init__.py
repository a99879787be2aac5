"""Study tools (layer 7): draw a graph (:mod:`.viz`) and time its ops (:mod:`.profiler`)."""

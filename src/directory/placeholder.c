/* directory placeholder */ int directory_placeholder_(void); int directory_placeholder_(void) { return 0; }

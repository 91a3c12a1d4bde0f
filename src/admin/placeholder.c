/* admin placeholder */ int admin_placeholder_(void); int admin_placeholder_(void) { return 0; }

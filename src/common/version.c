/*
 * version.c — clipmod_version(): the CLIPMOD_VERSION this library was built with (include/clipmod.h,
 * the one place the version is written; the Makefile derives the soname and clipmod.pc from it).
 */
#include "clipmod.h"

const char *clipmod_version(void) { return CLIPMOD_VERSION; }

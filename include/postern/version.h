/* The version of postern, set by the build. */
#ifndef POSTERN_VERSION_H
#define POSTERN_VERSION_H

#ifndef POSTERN_VERSION
#define POSTERN_VERSION "0.1.0"
#endif

#endif

// Umbrella header for OpenBLAS's CBLAS interface. The include path comes from
// `pkg-config openblas` (Debian: libopenblas-dev), so no absolute path is written here.
#include <cblas.h>

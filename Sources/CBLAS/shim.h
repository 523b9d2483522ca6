// Umbrella header for OpenBLAS's CBLAS interface. The include path comes from
// `pkg-config openblas` (Debian: libopenblas-dev), so no absolute path is written here.
#include <cblas.h>

// LAPACK's Cholesky factorization and inverse (column-major), which OpenBLAS exports as Fortran
// symbols: `uplo` 'U' or 'L'; `info` 0 on success, `i > 0` when the leading minor of order `i` is
// not positive definite. The trailing length is Fortran's hidden length of `uplo` (1).
void dpotrf_(const char *uplo, const int *n, double *a, const int *lda, int *info, size_t uplo_length);
void dpotri_(const char *uplo, const int *n, double *a, const int *lda, int *info, size_t uplo_length);

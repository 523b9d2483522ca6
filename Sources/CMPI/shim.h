// Swift cannot import Open MPI's handle and cast macros (MPI_COMM_WORLD is
// `OMPI_PREDEFINED_GLOBAL(MPI_Comm, ompi_mpi_comm_world)`, an address-of cast), so this header
// turns each one ShardQuant uses into a static inline getter. Header-only: nothing is compiled.
// The include path comes from `pkg-config ompi-c` (Debian: libopenmpi-dev).
#ifndef SHARDQUANT_CMPI_SHIM_H
#define SHARDQUANT_CMPI_SHIM_H
#include <mpi.h>

#define SHARDQUANT_MPI_GETTER(type, name, value) \
    static inline __attribute__((always_inline)) type name(void) { return (value); }

SHARDQUANT_MPI_GETTER(MPI_Comm, shardquant_mpi_comm_world, MPI_COMM_WORLD)
SHARDQUANT_MPI_GETTER(MPI_Comm, shardquant_mpi_comm_null, MPI_COMM_NULL)
SHARDQUANT_MPI_GETTER(MPI_Datatype, shardquant_mpi_float, MPI_FLOAT)
SHARDQUANT_MPI_GETTER(MPI_Datatype, shardquant_mpi_double, MPI_DOUBLE)
SHARDQUANT_MPI_GETTER(MPI_Datatype, shardquant_mpi_int64, MPI_INT64_T)
SHARDQUANT_MPI_GETTER(MPI_Datatype, shardquant_mpi_uint64, MPI_UINT64_T)
SHARDQUANT_MPI_GETTER(MPI_Datatype, shardquant_mpi_byte, MPI_BYTE)
SHARDQUANT_MPI_GETTER(MPI_Datatype, shardquant_mpi_int, MPI_INT)
SHARDQUANT_MPI_GETTER(MPI_Op, shardquant_mpi_max, MPI_MAX)
SHARDQUANT_MPI_GETTER(MPI_Op, shardquant_mpi_min, MPI_MIN)
SHARDQUANT_MPI_GETTER(MPI_Op, shardquant_mpi_sum, MPI_SUM)
SHARDQUANT_MPI_GETTER(MPI_Errhandler, shardquant_mpi_errors_return, MPI_ERRORS_RETURN)
SHARDQUANT_MPI_GETTER(void *, shardquant_mpi_in_place, MPI_IN_PLACE)
SHARDQUANT_MPI_GETTER(MPI_Status *, shardquant_mpi_status_ignore, MPI_STATUS_IGNORE)
SHARDQUANT_MPI_GETTER(int, shardquant_mpi_thread_serialized, MPI_THREAD_SERIALIZED)
SHARDQUANT_MPI_GETTER(int, shardquant_mpi_max_error_string, MPI_MAX_ERROR_STRING)
SHARDQUANT_MPI_GETTER(int, shardquant_mpi_success, MPI_SUCCESS)
SHARDQUANT_MPI_GETTER(int, shardquant_mpi_undefined, MPI_UNDEFINED)

#endif

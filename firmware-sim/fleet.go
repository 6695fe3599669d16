package sim

// Fleet is planned in fleet_plan.go.
func Fleet(o Options) *Plan { return Facility(o) }

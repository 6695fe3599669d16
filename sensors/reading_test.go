package sensors_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/flowgate/flowgate/sensors"
)

// The canonical payloads other components rely on: field names, units,
// what is left out.
func TestPayloads(t *testing.T) {
	for _, tc := range []struct {
		r    sensors.Reading
		want string
	}{
		{sensors.Reading{Kind: sensors.KindEnv, Env: sensors.Env{Temperature: 21.456, Pressure: 1013.254, Humidity: 45.5, HasPressure: true, HasHumidity: true}},
			`{"temperature":21.46,"pressure":1013.25,"humidity":45.5}`},
		{sensors.Reading{Kind: sensors.KindEnv, Env: sensors.Env{Temperature: -4, Pressure: 990, Humidity: 12, HasPressure: true}},
			`{"temperature":-4,"pressure":990}`},
		{sensors.Reading{Kind: sensors.KindEnv, Env: sensors.Env{Temperature: 19.5, Pressure: 3, Humidity: 61.25, HasHumidity: true}},
			`{"temperature":19.5,"humidity":61.25}`},
		{sensors.Reading{Kind: sensors.KindGPS, Fix: sensors.Fix{Valid: true, Lat: 51.92250001, Lon: -4.479, Altitude: 2.5,
			Speed: 12.5, Course: 87.654, Satellites: 9, HDOP: 0.9, ReceiverTime: time.Date(2024, 5, 14, 10, 45, 30, 500e6, time.UTC)}},
			`{"fix":true,"lat":51.9225,"lon":-4.479,"altitude":2.5,"speed":12.5,"course":87.65,"satellites":9,"hdop":0.9,"receiver_time":"2024-05-14T10:45:30.5Z"}`},
		{sensors.Reading{Kind: sensors.KindGPS, Fix: sensors.Fix{Satellites: 2, HDOP: 99.99}},
			`{"fix":false,"satellites":2,"hdop":99.99}`},
		{sensors.Reading{Kind: sensors.KindRFID, Tag: sensors.Tag{UID: []byte{0x04, 0xa1, 0xb2, 0xc3}, Reader: "dock \"door\""}},
			`{"tag":"04A1B2C3","reader":"dock \"door\""}`},
	} {
		got := tc.r.AppendJSON(nil)
		if string(got) != tc.want {
			t.Errorf("got  %s\nwant %s", got, tc.want)
		}
		if !json.Valid(got) {
			t.Errorf("not JSON: %s", got)
		}
	}
}

// BenchmarkPayload is the cost of a GPS payload, the largest.
func BenchmarkPayload(b *testing.B) {
	r := sensors.Reading{Kind: sensors.KindGPS, Fix: sensors.Fix{Valid: true, Lat: 51.9225, Lon: 4.47925,
		Altitude: 2, Speed: 10, Course: 69.25, Satellites: 9, HDOP: 0.9, ReceiverTime: time.Now()}}
	buf := make([]byte, 0, 256)
	b.ReportAllocs()
	for b.Loop() {
		buf = r.AppendJSON(buf[:0])
	}
}
